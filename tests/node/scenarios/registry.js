'use strict';
// Registry create/get/update/delete through azure-iothub's Registry.
const { Registry } = require('azure-iothub');
const { describe, emit, run } = require('./lib');

run(async ({ service, deviceId }) => {
  const registry = Registry.fromConnectionString(service);
  const created = (await registry.create({ deviceId, status: 'enabled' })).responseBody;
  emit({ step: 'created', device: created });
  const got = (await registry.get(deviceId)).responseBody;
  emit({ step: 'got', device: got });
  got.status = 'disabled';
  got.statusReason = 'maintenance';
  const updated = (await registry.update(got)).responseBody;
  emit({ step: 'updated', device: updated });
  const listed = (await registry.list()).responseBody;
  emit({ step: 'listed', ids: listed.map((device) => device.deviceId) });
  await registry.delete(deviceId);
  try {
    await registry.get(deviceId);
    emit({ step: 'gone', found: true });
  } catch (err) {
    emit({ step: 'gone', found: false, ...describe(err) });
  }
});
