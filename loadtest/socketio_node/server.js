// The push benchmark's Node baseline (`python -m loadtest push --compare`): socket.io with
// @socket.io/redis-adapter, the common way to run Socket.IO on several nodes. Each connection
// verifies the same HS256 JWT as the notifier's gateway (`auth: {token}`) and joins its user's
// room; the load generator publishes what the adapter of another node would
// (loadtest/publisher.py SocketIONodeWire). Nothing is stored or replayed: best effort, as
// python-socketio's baseline (loadtest/baseline_socketio.py).
//
// Run: node server.js gateway --port N, with LOADTEST_REDIS_URL and LOADTEST_JWT_SECRET set.
"use strict";

const crypto = require("node:crypto");
const http = require("node:http");
const { Server } = require("socket.io");
const { createAdapter } = require("@socket.io/redis-adapter");
const { createClient } = require("redis");

const AUDIENCE = "notifier"; // notifier/runtime/settings.py AuthSettings.jwt_audience

function verify(token, secret) {
  // HS256 only (the algorithm pinned, as notifier/runtime/tokens.py), exp and aud checked
  const parts = String(token || "").split(".");
  if (parts.length !== 3) return null;
  const header = JSON.parse(Buffer.from(parts[0], "base64url").toString());
  if (header.alg !== "HS256") return null;
  const mac = crypto.createHmac("sha256", secret).update(parts[0] + "." + parts[1]).digest();
  const given = Buffer.from(parts[2], "base64url");
  if (given.length !== mac.length || !crypto.timingSafeEqual(given, mac)) return null;
  const claims = JSON.parse(Buffer.from(parts[1], "base64url").toString());
  const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
  if (typeof claims.sub !== "string" || !audiences.includes(AUDIENCE)) return null;
  if (!(claims.exp * 1000 > Date.now())) return null;
  return claims.sub;
}

async function main() {
  const args = process.argv.slice(2);
  const port = Number(args[args.indexOf("--port") + 1]);
  if (args[0] !== "gateway" || !port) {
    console.error("usage: node server.js gateway --port N");
    process.exit(2);
  }
  const secret = process.env.LOADTEST_JWT_SECRET;
  const pub = createClient({ url: process.env.LOADTEST_REDIS_URL });
  const sub = pub.duplicate();
  await Promise.all([pub.connect(), sub.connect()]);
  const server = http.createServer();
  const io = new Server(server, { transports: ["websocket"], adapter: createAdapter(pub, sub) });
  io.use((socket, next) => {
    let user = null;
    try {
      user = verify(socket.handshake.auth.token, secret);
    } catch {
      user = null;
    }
    if (user === null) return next(new Error("unauthorized"));
    socket.data.user = user;
    next();
  });
  io.on("connection", (socket) => socket.join(socket.data.user));
  server.listen(port, "127.0.0.1");
  process.on("SIGTERM", () => process.exit(0));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
