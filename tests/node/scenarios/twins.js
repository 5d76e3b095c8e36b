'use strict';
// Twins both ways: a Node device gets its twin, reports and receives a desired patch that the
// Node service SDK sends; the service SDK reads what the device reported.
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { Registry } = require('azure-iothub');
const { emit, run } = require('./lib');

run(async ({ service, device, deviceId }) => {
  const registry = Registry.fromConnectionString(service);
  const client = Client.fromConnectionString(device, Mqtt);
  await client.open();
  try {
    const twin = await client.getTwin();
    emit({ step: 'device-got', desired: twin.properties.desired, reported: twin.properties.reported });
    const patches = [];
    // The SDK passes its live desired object on the first event: keep a copy of each.
    twin.on('properties.desired', (patch) => patches.push(JSON.parse(JSON.stringify(patch))));
    await new Promise((resolve, reject) =>
      twin.properties.reported.update({ firmware: { currentFwVersion: '1.0.0' } }, (err) => (err ? reject(err) : resolve()))
    );
    const serviceTwin = (await registry.getTwin(deviceId)).responseBody;
    emit({ step: 'service-got', reported: serviceTwin.properties.reported, etag: serviceTwin.etag });
    // Twin.update sends the twin's etag as If-Match and copies the result into the twin.
    await serviceTwin.update({ tags: { ring: 'canary' }, properties: { desired: { interval: 30 } } });
    emit({ step: 'service-updated', tags: serviceTwin.tags, desired: serviceTwin.properties.desired, etag: serviceTwin.etag });
    const deadline = Date.now() + 10000;
    while (!patches.some((patch) => patch.interval === 30) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    emit({ step: 'device-patches', patches });
  } finally {
    await client.close();
  }
});
