'use strict';
// A scheduled twin update through azure-iothub's JobClient, followed until it ends.
const { JobClient } = require('azure-iothub');
const { emit, run } = require('./lib');

run(async ({ service, jobId, queryCondition, patch }) => {
  const jobs = JobClient.fromConnectionString(service);
  const scheduled = await jobs.scheduleTwinUpdate(jobId, queryCondition, patch, new Date(), 60);
  emit({ step: 'scheduled', job: scheduled.jobStatus });
  let job = scheduled.jobStatus;
  const deadline = Date.now() + 20000;
  while (!['completed', 'failed', 'cancelled'].includes(job.status) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    job = (await jobs.getJob(jobId)).jobStatus;
  }
  emit({ step: 'ended', job });
  const page = await jobs.createQuery('scheduleUpdateTwin', 'completed', 10).next();
  emit({ step: 'query', result: page.result, more: page.message.headers['x-ms-continuation'] || null });
});
