'use strict';
// A Node device that answers direct methods: it says "ready" once subscribed, answers until
// pytest writes a line on stdin, then reports what it was asked.
const { Client } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');
const { emit, nextLine, run } = require('./lib');

run(async ({ device }) => {
  const client = Client.fromConnectionString(device, Mqtt);
  const requests = [];
  await client.open();
  client.onDeviceMethod('reboot', (request, response) => {
    requests.push({ methodName: request.methodName, payload: request.payload });
    response.send(200, { rebooting: true, delay: request.payload && request.payload.delay }, () => {});
  });
  client.onDeviceMethod('fail', (request, response) => {
    requests.push({ methodName: request.methodName, payload: request.payload });
    response.send(500, { reason: 'asked to fail' }, () => {});
  });
  // Setting a handler subscribes with no way to await the SUBACK; the hub handles one
  // connection's packets in order, so once a later twin GET is answered the subscription holds.
  await client.getTwin();
  emit({ step: 'ready' });
  await nextLine();
  emit({ step: 'requests', requests });
  await client.close();
});
