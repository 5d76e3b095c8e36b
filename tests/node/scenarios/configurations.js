'use strict';
// An automatic device configuration through azure-iothub's Registry: add, get, list, update
// (with its etag), then wait until the hub has applied it to the targeted twin, then remove.
const { Registry } = require('azure-iothub');
const { describe, emit, run } = require('./lib');

run(async ({ service, configurationId, deviceId, targetCondition }) => {
  const registry = Registry.fromConnectionString(service);
  await registry.addConfiguration({
    id: configurationId,
    schemaVersion: '1.0',
    labels: { owner: 'node' },
    content: { deviceContent: { 'properties.desired.settings': { interval: 60 } } },
    metrics: { queries: { applied: "SELECT deviceId FROM devices WHERE properties.reported.settings.interval = 60" } },
    targetCondition,
    priority: 10,
  });
  const added = (await registry.getConfiguration(configurationId)).responseBody;
  emit({ step: 'added', configuration: added });
  const listed = (await registry.getConfigurations()).responseBody;
  emit({ step: 'listed', ids: listed.map((configuration) => configuration.id) });
  added.priority = 20;
  added.labels = { owner: 'node', updated: 'yes' };
  await registry.updateConfiguration(added);
  const updated = (await registry.getConfiguration(configurationId)).responseBody;
  emit({ step: 'updated', configuration: updated });
  const deadline = Date.now() + 15000;
  let twin = (await registry.getTwin(deviceId)).responseBody;
  while (!twin.properties.desired.settings && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    twin = (await registry.getTwin(deviceId)).responseBody;
  }
  emit({ step: 'applied', desired: twin.properties.desired, configurations: twin.configurations });
  await registry.removeConfiguration(configurationId);
  try {
    await registry.getConfiguration(configurationId);
    emit({ step: 'removed', found: true });
  } catch (err) {
    emit({ step: 'removed', found: false, ...describe(err) });
  }
});
