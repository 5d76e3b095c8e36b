'use strict';
// A direct method through azure-iothub's Client.invokeDeviceMethod (REST), answered by whichever
// device pytest connected.
const { Client } = require('azure-iothub');
const { describe, emit, run } = require('./lib');

run(async ({ service, deviceId, calls }) => {
  const client = Client.fromConnectionString(service);
  for (const call of calls) {
    try {
      const { result } = await client.invokeDeviceMethod(deviceId, call);
      emit({ step: call.methodName, result });
    } catch (err) {
      emit({ step: call.methodName, ...describe(err) });
    }
  }
});
