// A WebSub (PubSubHubbub 0.4) subscriber nobody on this team wrote: the npm
// package `pubsubhubbub`, run by tests/e2e/test_websub_hub.py:
//
//     NODE_PATH=<dir>/node_modules node tests/e2e/pubsubhubbub_subscriber.js PORT [SECRET]
//
// It listens on 127.0.0.1:PORT with the package's own request handler
// (createServer({callbackUrl, secret}).listener()), wrapped only to report
// each request the hub makes before the package handles it.
//
// Commands, one JSON object a line on stdin:
//   {"cmd": "subscribe", "topic": T, "hub": H, "callback": C?}
//   {"cmd": "unsubscribe", "topic": T, "hub": H, "callback": C?}
// (C, optional, is a callback URL of this server other than the default
// `http://127.0.0.1:PORT/callback?topic=T&hub=H` the package builds.)
//
// Events, one JSON object a line on stdout, each with "event":
//   listen                          the server listens
//   request {method, url, headers}  the hub called us (any request)
//   subscribe / unsubscribe {topic, hub, lease}   intent verified (GET answered)
//   denied {topic, hub, error?}     hub.mode=denied received (section 5.2), or
//                                   the subscription request itself failed
//   feed {topic, hub, callback, body_b64, headers}  a correctly signed delivery
//   error {message}
//
// The package's secret handling (1.0.2, andris9/pubsubhubbub issue #9): it
// sends the hub `hub.secret = hex(HMAC-SHA1(secret, topic))`, yet checks
// X-Hub-Signature (with whichever algorithm the header names) keyed by the
// raw `secret`, so against a hub that signs with the secret it was given, as
// section 8 requires, no delivery would ever be reported.  The workaround
// here, the fix that issue proposes: each request the hub makes is handled
// with the secret derived for the topic in its callback's query (the package
// puts it there), and a subscription request is built with the raw secret.
// The package still verifies every signature itself: a `feed` event is a
// delivery whose signature matched.
'use strict';

const crypto = require('crypto');
const http = require('http');
const readline = require('readline');
const pubsubhubbub = require('pubsubhubbub');

const port = Number(process.argv[2]);
const secret = process.argv[3] || '';

function emit(event, data) {
    process.stdout.write(JSON.stringify(Object.assign({ event }, data || {})) + '\n');
}

const pubsub = pubsubhubbub.createServer({
    callbackUrl: `http://127.0.0.1:${port}/callback`,
    secret: secret || undefined
});

for (const name of ['subscribe', 'unsubscribe']) {
    pubsub.on(name, data => emit(name, data));
}
pubsub.on('denied', data =>
    emit('denied', {
        topic: data.topic,
        hub: data.hub,
        error: data.error ? String((data.error && data.error.message) || data.error) : undefined,
        responseBody: data.error && data.error.responseBody
    })
);
pubsub.on('feed', data =>
    emit('feed', {
        topic: data.topic,
        hub: data.hub,
        callback: data.callback,
        body_b64: data.feed.toString('base64'),
        headers: data.headers
    })
);
pubsub.on('error', error => emit('error', { message: String(error && error.message) }));

function derived(topic) {
    return crypto.createHmac('sha1', secret).update(topic).digest('hex');
}

const handle = pubsub.listener();
const server = http.createServer((req, res) => {
    emit('request', { method: req.method, url: req.url, headers: req.headers });
    const topic = new URL(req.url, 'http://127.0.0.1').searchParams.get('topic');
    if (secret) {
        // See above: verify with the secret the hub was sent for this topic.
        pubsub.secret = topic ? derived(topic) : secret;
    }
    handle(req, res); // no `next`: the package answers as a plain http server
});
server.on('error', error => {
    emit('error', { message: String(error.message) });
    process.exit(1);
});
server.listen(port, '127.0.0.1', () => emit('listen', { port }));

const commands = readline.createInterface({ input: process.stdin });
commands.on('line', line => {
    let command;
    try {
        command = JSON.parse(line);
    } catch (e) {
        return emit('error', { message: 'bad command: ' + line });
    }
    if (command.cmd === 'subscribe' || command.cmd === 'unsubscribe') {
        if (secret) {
            pubsub.secret = secret; // the package derives the hub's secret from it
        }
        pubsub[command.cmd](command.topic, command.hub, command.callback);
        emit('sent', { cmd: command.cmd, topic: command.topic });
    } else {
        emit('error', { message: 'unknown command: ' + command.cmd });
    }
});
// The test closes stdin to stop us.
commands.on('close', () => server.close(() => process.exit(0)));
