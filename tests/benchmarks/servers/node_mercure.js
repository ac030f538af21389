// The `mercure` npm package (a Node hub of an older draft) on its own
// Express server.  Usage: NODE_PATH=.peers/node_modules node node_mercure.js PORT KEY
'use strict';
const { Server } = require('mercure');

const [port, key] = [Number(process.argv[2]), process.argv[3]];
const server = new Server({ jwtKey: key, path: '/hub', allowAnonymous: true });
server.listen(port, '127.0.0.1').then(() => console.log(`listening on ${port}`));
