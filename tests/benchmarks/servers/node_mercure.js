// The `mercure` npm package (a Node hub of an older draft) on its own
// Express server.  Usage: NODE_PATH=.peers/node_modules node node_mercure.js PORT KEY
//
// mercure 0.1.0 (its only release) answers 401 to every subscription and
// every publish as published: two bugs, worked around here from outside
// its source, so that it can be measured at all (say so next to its figures):
// - hub.js registers `sse.on('connection', this.onSseConnection)` unbound,
//   so `this.authorizeSubscribe` is undefined inside it and the TypeError is
//   answered 401: the method is bound to the hub before listen() reads it;
// - authorization.js verifies with `{complete: true}`, so the claims come
//   back under `payload` while server.js and getAuthorizedTargets read
//   `claims.mercure`: the publisher check returns the payload.
'use strict';
const { Server } = require('mercure');

const [port, key] = [Number(process.argv[2]), process.argv[3]];
const server = new Server({ jwtKey: key, path: '/hub', allowAnonymous: true });
const hub = server.hub;
hub.onSseConnection = hub.onSseConnection.bind(hub);
for (const name of ['authorizePublish', 'authorizeSubscribe']) {
  const original = hub[name].bind(hub);
  hub[name] = async (req) => {
    const decoded = await original(req);
    return decoded && decoded.payload ? decoded.payload : decoded;
  };
}
server.listen(port, '127.0.0.1').then(() => console.log(`listening on ${port}`));
