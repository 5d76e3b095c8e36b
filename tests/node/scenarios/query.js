'use strict';
// A paged query through azure-iothub's Registry.createQuery and Query.nextAsTwin.
const { Registry } = require('azure-iothub');
const { emit, run } = require('./lib');

run(async ({ service, sql, pageSize }) => {
  const query = Registry.fromConnectionString(service).createQuery(sql, pageSize);
  const pages = [];
  while (query.hasMoreResults && pages.length < 50) {
    const { result } = await query.nextAsTwin();
    pages.push(result.map((twin) => ({ deviceId: twin.deviceId, tags: twin.tags, etag: twin.etag })));
  }
  emit({ step: 'pages', pages, more: query.hasMoreResults });
  const { result } = await Registry.fromConnectionString(service).createQuery(
    'SELECT COUNT() AS n FROM devices'
  ).next();
  emit({ step: 'count', rows: result });
});
