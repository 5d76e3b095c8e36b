'use strict';
// Shared by the scenario scripts that pytest runs (tests/node/test_node_sdks.py).
// Arguments arrive as JSON in TWINFLEET_ARGS (never on the command line: they hold keys); each
// fact goes out as one JSON line on stdout; a hard deadline ends a stuck scenario with exit 3.

const args = JSON.parse(process.env.TWINFLEET_ARGS || '{}');

function emit(fact) {
  process.stdout.write(JSON.stringify(fact) + '\n');
}

// What a failed SDK call says: its error class, message and, for HTTP, the status and body.
function describe(err) {
  const response = err && (err.response || (err.responseBody && err.responseBody.httpResponse));
  return {
    error: err && err.constructor ? err.constructor.name : String(err),
    message: err && err.message,
    status: response && response.statusCode,
    body: err && typeof err.responseBody === 'string' ? err.responseBody : undefined,
  };
}

// A line from pytest on stdin (how it says "go on").
function nextLine() {
  return new Promise((resolve) => {
    let buffered = '';
    const onData = (chunk) => {
      buffered += chunk;
      const end = buffered.indexOf('\n');
      if (end >= 0) {
        process.stdin.off('data', onData);
        process.stdin.pause();
        resolve(buffered.slice(0, end));
      }
    };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', onData);
    process.stdin.resume();
  });
}

function run(scenario) {
  const seconds = args.deadline || 30;
  setTimeout(() => {
    process.stderr.write(`scenario timed out after ${seconds}s\n`);
    process.exit(3);
  }, seconds * 1000).unref();
  scenario(args).then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(JSON.stringify(describe(err)) + '\n' + (err && err.stack) + '\n');
      process.exit(1);
    }
  );
}

module.exports = { args, describe, emit, nextLine, run };
