// A client WebSocket for the Node clients, as loadtest/wsclient.py is for the Python ones: the
// opening handshake checked (101 and Sec-WebSocket-Accept), then the server's frames split in the
// socket's read callback, each whole text message handed over at once (a fragmented one once
// complete), pings answered, the closing handshake done; every frame we send is masked.
// Half the CPU per message of the `ws` package, whose stream machinery costs more than the frame.
"use strict";

const crypto = require("node:crypto");
const net = require("node:net");

const MAX_MESSAGE = 1 << 20; // as wsclient.py
const MAX_HEAD = 1 << 16; // of the handshake response
const CLOSE_TIMEOUT_MS = 1000; // for the server to end the TCP connection once close frames crossed
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"; // RFC 6455 section 1.3
const TEXT = 1;
const CLOSE = 8;
const PING = 9;
const PONG = 10;

class Socket {
  // handlers: onOpen(), onMessage(text), onError(error) (then onClose), onClose(code): the close
  // frame's code, 1006 when none came or on an error; nothing is called after it
  constructor(url, handlers) {
    const u = new URL(url);
    this.handlers = handlers;
    this.key = crypto.randomBytes(16).toString("base64");
    this.head = true; // until the handshake response's head is read
    this.pending = null; // bytes read but not handled yet (an incomplete head or frame)
    this.fragments = null; // of a fragmented text message
    this.closeSent = false;
    this.code = 1006;
    this.failed = false;
    this.ended = false;
    this.sock = net.connect({ host: u.hostname, port: Number(u.port) || 80 });
    this.sock.setNoDelay(true);
    this.sock.on("connect", () =>
      this.sock.write(
        `GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\n` +
          `Connection: Upgrade\r\nSec-WebSocket-Key: ${this.key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      ),
    );
    this.sock.on("data", (chunk) => this.read(chunk));
    this.sock.on("error", (error) => this.fail(error));
    this.sock.on("close", () => this.end());
  }

  send(text) {
    if (!this.head && !this.closeSent) this.frame(TEXT, Buffer.from(text));
  }

  close(code = 1000) {
    if (this.head || this.closeSent) {
      this.terminate();
      return;
    }
    this.sendClose(code);
  }

  terminate() {
    this.sock.destroy();
  }

  read(chunk) {
    let data = this.pending === null ? chunk : Buffer.concat([this.pending, chunk]);
    this.pending = null;
    if (this.head) {
      const end = data.indexOf("\r\n\r\n");
      if (end < 0) {
        if (data.length > MAX_HEAD) this.fail(new Error("handshake response head too long"));
        else this.pending = data;
        return;
      }
      if (!this.accepted(data.toString("latin1", 0, end))) {
        this.fail(Object.assign(new Error("handshake refused"), { code: "InvalidStatus" }));
        return;
      }
      this.head = false;
      data = data.subarray(end + 4);
      this.handlers.onOpen();
    }
    this.frames(data);
  }

  accepted(head) {
    const lines = head.split("\r\n");
    if (!/^HTTP\/1\.1 101 /.test(lines[0])) return false;
    const want = crypto.createHash("sha1").update(this.key + GUID).digest("base64");
    return lines.some((line) => /^sec-websocket-accept:/i.test(line) && line.slice(21).trim() === want);
  }

  frames(data) {
    let at = 0;
    const size = data.length;
    while (size - at >= 2 && !this.failed) {
      const first = data[at];
      const second = data[at + 1];
      let length = second & 0x7f;
      let head = 2;
      if (length === 126) {
        if (size - at < 4) break;
        length = data.readUInt16BE(at + 2);
        head = 4;
      } else if (length === 127) {
        if (size - at < 10) break;
        length = Number(data.readBigUInt64BE(at + 2));
        head = 10;
      }
      if (second & 0x80 || first & 0x70 || length > MAX_MESSAGE) {
        this.fail(new Error("a masked, extended or oversized frame from the server"));
        return;
      }
      const end = at + head + length;
      if (end > size) break;
      this.handle(first & 0x80, first & 0x0f, data.subarray(at + head, end));
      at = end;
    }
    if (at < size && !this.failed) this.pending = data.subarray(at);
  }

  handle(fin, opcode, payload) {
    if (opcode === TEXT && fin && this.fragments === null) {
      this.handlers.onMessage(payload.toString());
    } else if (opcode === TEXT || opcode === 0) {
      if ((opcode === TEXT) === (this.fragments !== null)) {
        this.fail(new Error("a continuation out of place"));
        return;
      }
      this.fragments = opcode === TEXT ? [payload] : [...this.fragments, payload];
      if (fin) {
        const message = Buffer.concat(this.fragments).toString();
        this.fragments = null;
        this.handlers.onMessage(message);
      }
    } else if (opcode === PING) {
      if (!this.closeSent) this.frame(PONG, payload);
    } else if (opcode === CLOSE) {
      this.code = payload.length >= 2 ? payload.readUInt16BE(0) : 1005;
      if (!this.closeSent) this.sendClose(this.code === 1005 ? 1000 : this.code);
    } else if (opcode !== PONG) {
      this.fail(new Error(`unexpected opcode ${opcode}`)); // binary: the gateway sends text only
    }
  }

  sendClose(code) {
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code, 0);
    this.frame(CLOSE, payload);
    this.closeSent = true;
    setTimeout(() => this.terminate(), CLOSE_TIMEOUT_MS).unref(); // the server ends the connection
  }

  frame(opcode, payload) {
    const length = payload.length;
    const head = length < 126 ? 2 : length < 65536 ? 4 : 10;
    const out = Buffer.alloc(head + 4 + length);
    out[0] = 0x80 | opcode;
    if (head === 2) out[1] = 0x80 | length;
    else if (head === 4) {
      out[1] = 0x80 | 126;
      out.writeUInt16BE(length, 2);
    } else {
      out[1] = 0x80 | 127;
      out.writeBigUInt64BE(BigInt(length), 2);
    }
    const mask = crypto.randomBytes(4);
    mask.copy(out, head);
    for (let i = 0; i < length; i++) out[head + 4 + i] = payload[i] ^ mask[i & 3];
    this.sock.write(out);
  }

  fail(error) {
    if (this.failed || this.ended) return;
    this.failed = true;
    this.code = 1006;
    this.handlers.onError(error);
    this.sock.destroy();
  }

  end() {
    if (this.ended) return;
    this.ended = true;
    this.handlers.onClose(this.code);
  }
}

module.exports = { Socket };
