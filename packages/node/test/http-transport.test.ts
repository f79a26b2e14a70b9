// The transports: our plain-HTTP client against a real server on loopback
// that answers byte for byte as each test scripts it, and node:https's.
import assert from "node:assert/strict";
import https from "node:https";
import { createServer, type Server, type Socket } from "node:net";
import { after, before, it } from "node:test";
import { selfSignedCertificate } from "@threadline/test-support";
import {
  PlainHttpClient,
  transportFor,
  type PlainHttpError,
} from "../src/internal/http-transport.ts";

interface Received {
  connection: number;
  head: string;
  body: string;
}

/** Answers each request with the next scripted reply (bytes, pieces or an action). */
type Reply = string | string[] | ((socket: Socket) => void);

let server: Server;
let url: URL;
let replies: Reply[] = [];
let received: Received[] = [];
let connections = 0;

before(async () => {
  server = createServer((socket) => {
    const connection = ++connections;
    let buf = Buffer.alloc(0);
    socket.on("error", () => {});
    socket.on("data", async (chunk) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf("\r\n\r\n");
        if (end < 0) return;
        const head = buf.toString("latin1", 0, end);
        const length = Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + length) return;
        const body = buf.toString("utf8", end + 4, end + 4 + length);
        buf = buf.subarray(end + 4 + length);
        received.push({ connection, head, body });
        const reply =
          replies.shift() ?? "HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        if (typeof reply === "function") reply(socket);
        else if (typeof reply === "string") socket.write(reply);
        else
          for (const piece of reply) {
            socket.write(piece);
            await new Promise((r) => setTimeout(r, 2));
          }
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const address = server.address() as { port: number };
  url = new URL(`http://127.0.0.1:${address.port}/v1/traces?x=1`);
});

after(() => server.close());

function reset(...scripted: Reply[]): PlainHttpClient {
  replies = scripted;
  received = [];
  connections = 0;
  return new PlainHttpClient(url, 16);
}

it("sends a POST with its headers and body, and reuses the connection", async () => {
  const client = reset(
    "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 2\r\n\r\nok",
    "HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n",
  );
  const first = await client.send(
    {
      "content-type": "application/x-protobuf",
      "content-length": 5,
      "x-api-key": "k",
    },
    Buffer.from("hello"),
    1000,
  );
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("content-type"), "application/x-protobuf");
  assert.equal(first.body.toString(), "ok");
  const second = await client.send(
    { "content-length": 3 },
    Buffer.from("abc"),
    1000,
  );
  assert.equal(second.status, 202);
  assert.equal(second.body.length, 0);
  assert.equal(received.length, 2);
  assert.match(received[0]!.head, /^POST \/v1\/traces\?x=1 HTTP\/1\.1\r\n/);
  assert.match(received[0]!.head, new RegExp(`\r\nHost: ${url.host}\r\n`));
  assert.match(received[0]!.head, /\r\nx-api-key: k(\r\n|$)/);
  assert.equal(received[0]!.body, "hello");
  assert.equal(received[1]!.body, "abc");
  assert.equal(received[1]!.connection, received[0]!.connection);
  client.close();
});

it("reads a chunked body delivered a few bytes at a time, after an interim answer", async () => {
  const answer =
    "HTTP/1.1 100 Continue\r\n\r\n" +
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" +
    "5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nx-trailer: t\r\n\r\n";
  const pieces: string[] = [];
  for (let i = 0; i < answer.length; i += 3)
    pieces.push(answer.slice(i, i + 3));
  const client = reset(pieces);
  const res = await client.send({ "content-length": 0 }, Buffer.alloc(0), 2000);
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), "hello, world");
  // The connection is still good for the next request.
  const next = await client.send(
    { "content-length": 1 },
    Buffer.from("x"),
    1000,
  );
  assert.equal(next.status, 200);
  assert.equal(received[1]!.connection, received[0]!.connection);
  client.close();
});

it("keeps the whole of a body as long as the bytes it keeps, and the connection", async () => {
  const body = "0123456789abcdef";
  const client = reset(
    `HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
  );
  const res = await client.send({}, Buffer.alloc(0), 1000);
  assert.equal(res.body.toString(), body);
  assert.equal(res.truncated, false);
  const next = await client.send({}, Buffer.alloc(0), 1000);
  assert.equal(next.status, 200);
  assert.equal(received[1]!.connection, received[0]!.connection);
  client.close();
});

/**
 * Writes `head`, then body bytes for as long as the socket is open (each
 * framed by `frame`); `done` gets the bytes written once it has closed.
 */
function endless(
  socket: Socket,
  head: string,
  frame: (piece: Buffer) => Buffer | string,
  done: (bytesWritten: number) => void,
): void {
  socket.write(head);
  const piece = Buffer.alloc(64 * 1024, 0x61);
  const pump = () => {
    while (!socket.destroyed && socket.write(frame(piece)));
    if (!socket.destroyed) socket.once("drain", pump);
  };
  socket.on("close", () => done(socket.bytesWritten));
  pump();
}

it("stops reading a body that goes on past the bytes it keeps, and closes the connection", async () => {
  for (const [framing, head, frame] of [
    [
      "chunked, endless",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
      (piece: Buffer) =>
        Buffer.concat([
          Buffer.from(`${piece.length.toString(16)}\r\n`),
          piece,
          Buffer.from("\r\n"),
        ]),
    ],
    [
      "500 MB by its length",
      "HTTP/1.1 200 OK\r\nContent-Length: 500000000\r\n\r\n",
      (piece: Buffer) => piece,
    ],
    [
      "until the server closes",
      "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
      (piece: Buffer) => piece,
    ],
  ] as const) {
    let written: (bytes: number) => void;
    const closed = new Promise<number>((r) => (written = r));
    const client = reset((socket) => endless(socket, head, frame, written));
    const res = await client.send({}, Buffer.alloc(0), 60_000);
    assert.equal(res.status, 200, framing);
    assert.equal(res.body.toString(), "a".repeat(16), framing);
    assert.equal(res.truncated, true, framing);
    // The client closed the connection; the server could only fill the
    // sockets' buffers before it noticed.
    const bytes = await closed;
    assert.ok(bytes < 32 * 1024 * 1024, `${framing}: ${bytes} bytes written`);
    // The next request goes on a connection of its own.
    await client.send({}, Buffer.alloc(0), 1000);
    assert.notEqual(received[1]!.connection, received[0]!.connection, framing);
    client.close();
  }
});

it("reads to the end of a body without a length, then opens a new connection", async () => {
  const client = reset((socket) => {
    socket.end(
      "HTTP/1.1 503 Service Unavailable\r\nretry-after: 3\r\n\r\nlater",
    );
  });
  const res = await client.send({}, Buffer.alloc(0), 1000);
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("retry-after"), "3");
  assert.equal(res.body.toString(), "later");
  await client.send({}, Buffer.alloc(0), 1000);
  assert.notEqual(received[1]!.connection, received[0]!.connection);
  client.close();
});

it("does not reuse a connection the server said it would close", async () => {
  const client = reset(
    "HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 0\r\n\r\n",
  );
  await client.send({}, Buffer.alloc(0), 1000);
  await client.send({}, Buffer.alloc(0), 1000);
  assert.notEqual(received[1]!.connection, received[0]!.connection);
  client.close();
});

it("forgets an idle connection the server closed", async () => {
  const client = reset((socket) => {
    socket.write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
    setTimeout(() => socket.end(), 20);
  });
  await client.send({}, Buffer.alloc(0), 1000);
  await new Promise((r) => setTimeout(r, 100));
  const res = await client.send({}, Buffer.alloc(0), 1000);
  assert.equal(res.status, 200);
  assert.notEqual(received[1]!.connection, received[0]!.connection);
  client.close();
});

it("fails with the socket's code when the connection breaks mid-answer", async () => {
  const client = reset((socket) => {
    socket.write("HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc");
    setTimeout(() => socket.destroy(), 10);
  });
  await assert.rejects(
    client.send({}, Buffer.alloc(0), 1000),
    (err: PlainHttpError) => err.code === "ECONNRESET" && !err.final,
  );
  client.close();
});

it("fails for good, saying what it heard, when the server does not answer in HTTP/1.x", async () => {
  // The first frame an HTTP/2 (gRPC) server sends, and a TLS alert; each
  // ended both ways a server may end it.
  const settings = Buffer.from("000000040000000000", "hex");
  const alert = Buffer.from("15030100020246", "hex");
  for (const [bytes, said] of [
    [
      settings,
      /answered in HTTP\/2 \(a gRPC port\? OTLP\/HTTP listens on 4318\)/,
    ],
    [alert, /answered in TLS \(use an https:\/\/ endpoint\)/],
    [
      Buffer.from("SSH-2.0-OpenSSH_9.6\r\n"),
      /did not answer in HTTP\/1\.x \(its answer began "SSH-2\.0-OpenSSH_/,
    ],
  ] as const)
    for (const end of ["end", "destroy", "hang"] as const) {
      const client = reset((socket) => {
        socket.write(bytes);
        if (end === "end") socket.end();
        else if (end === "destroy") setTimeout(() => socket.destroy(), 10);
      });
      await assert.rejects(
        client.send({}, Buffer.alloc(0), 300),
        (err: PlainHttpError) => err.final && said.test(err.message),
        `${bytes.toString("hex")} then ${end}`,
      );
      client.close();
    }
});

it("fails for good, saying so, when an https: address is served in plain HTTP", async () => {
  // A plain-HTTP server reading a TLS handshake answers 400, and closes.
  const plain = createServer((socket) => {
    socket.on("error", () => {});
    socket.once("data", () =>
      socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n"),
    );
  });
  await new Promise<void>((r) => plain.listen(0, "127.0.0.1", r));
  const port = (plain.address() as { port: number }).port;
  const transport = transportFor(
    new URL(`https://127.0.0.1:${port}/v1/traces`),
    16,
    "POST",
  );
  try {
    await assert.rejects(
      transport.send({ "content-length": 1 }, Buffer.from("x"), 2000),
      (err: PlainHttpError) =>
        err.final &&
        err.message ===
          "the server does not speak TLS (use an http:// endpoint?)",
    );
  } finally {
    transport.close();
    plain.close();
  }
});

it("fails when nothing answers in time", async () => {
  const client = reset(() => {});
  await assert.rejects(
    client.send({}, Buffer.alloc(0), 100),
    /no answer within 100 ms/,
  );
  client.close();
});

/** Answers with headers, then one byte of a 40-byte body each 50 ms. */
function trickle(socket: Socket): void {
  socket.write("HTTP/1.1 200 OK\r\ncontent-length: 40\r\n\r\n");
  const t = setInterval(() => socket.write("x"), 50);
  socket.on("close", () => clearInterval(t));
}

it("gives up on an answer still trickling in when the time is up", async () => {
  const client = reset(trickle);
  await assert.rejects(
    client.send({}, Buffer.alloc(0), 300),
    /no answer within 300 ms/,
  );
  client.close();
});

it("fails on a connection refused, with its code", async () => {
  const closed = createServer();
  await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
  const port = (closed.address() as { port: number }).port;
  await new Promise((r) => closed.close(r));
  const client = new PlainHttpClient(new URL(`http://127.0.0.1:${port}/`), 16);
  await assert.rejects(
    client.send({}, Buffer.alloc(0), 1000),
    (err: PlainHttpError) => err.code === "ECONNREFUSED",
  );
});

it("refuses a header that would break the request, for good", async () => {
  const client = reset();
  await assert.rejects(
    client.send({ "x-key": "a\r\nInjected: 1" }, Buffer.alloc(0), 1000),
    (err: PlainHttpError) => err.final && /x-key/.test(err.message),
  );
  assert.equal(received.length, 0);
});

it("refuses, for good and with OpenSSL's code, TLS files node:https cannot use", async () => {
  const client = selfSignedCertificate("orders");
  const transport = transportFor(
    new URL("https://127.0.0.1:9/v1/traces"),
    64,
    "POST",
    { cert: client.cert, key: selfSignedCertificate("other").key },
  );
  try {
    await assert.rejects(
      transport.send({}, Buffer.alloc(0), 1000),
      (err: PlainHttpError) =>
        err.final && err.code === "ERR_OSSL_X509_KEY_VALUES_MISMATCH",
    );
  } finally {
    transport.close();
  }
});

it("fails clearly on an answer that is not HTTP", async () => {
  const client = reset("SSH-2.0-OpenSSH\r\n\r\n");
  await assert.rejects(
    client.send({}, Buffer.alloc(0), 1000),
    /did not answer in HTTP\/1\.x/,
  );
  client.close();
});

it("sends one Host, the caller's when it gives one", async () => {
  const client = reset();
  await client.send({ Host: "collector.internal" }, Buffer.alloc(0), 1000);
  assert.equal(received[0]!.head.match(/\r\nhost:/gi)?.length, 1);
  assert.match(received[0]!.head, /\r\nHost: collector\.internal(\r\n|$)/);
  client.close();
});

it("reaches https: addresses through node:https, answering the same way", async () => {
  const tls = selfSignedCertificate();
  let got = "";
  const secure = https.createServer(tls, (req, res) => {
    if (req.url === "/slow") {
      trickle(res.socket as Socket);
      return;
    }
    req.setEncoding("utf8");
    req.on("data", (c: string) => (got += c));
    req.on("end", () => {
      res.setHeader("retry-after", "7");
      res.end("0123456789abcdefghijklmnopqrstuvwxyz");
    });
  });
  await new Promise<void>((r) => secure.listen(0, "127.0.0.1", r));
  const port = (secure.address() as { port: number }).port;
  // The certificate is our own, made above.
  process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0";
  try {
    const transport = transportFor(
      new URL(`https://127.0.0.1:${port}/v1/logs`),
      16,
      "POST",
    );
    const res = await transport.send(
      { "content-length": 4 },
      Buffer.from("logs"),
      1000,
    );
    transport.close();
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("retry-after"), "7");
    assert.equal(res.body.toString(), "0123456789abcdef");
    assert.equal(got, "logs");
    const slow = transportFor(
      new URL(`https://127.0.0.1:${port}/slow`),
      16,
      "GET",
    );
    await assert.rejects(
      slow.send({}, Buffer.alloc(0), 300),
      /no answer within 300 ms/,
    );
    slow.close();
  } finally {
    delete process.env["NODE_TLS_REJECT_UNAUTHORIZED"];
    secure.close();
  }
});

it("stops reading an endless body over https: too, and closes the connection", async () => {
  const tls = selfSignedCertificate();
  let written: (bytes: number) => void;
  const closed = new Promise<number>((r) => (written = r));
  const secure = https.createServer(tls, (req) => {
    req.resume();
    req.on("end", () =>
      endless(
        req.socket,
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        (piece) =>
          Buffer.concat([
            Buffer.from(`${piece.length.toString(16)}\r\n`),
            piece,
            Buffer.from("\r\n"),
          ]),
        written,
      ),
    );
  });
  await new Promise<void>((r) => secure.listen(0, "127.0.0.1", r));
  const port = (secure.address() as { port: number }).port;
  // The certificate is our own, made above.
  process.env["NODE_TLS_REJECT_UNAUTHORIZED"] = "0";
  const transport = transportFor(
    new URL(`https://127.0.0.1:${port}/v1/traces`),
    16,
    "POST",
  );
  try {
    const res = await transport.send(
      { "content-length": 1 },
      Buffer.from("x"),
      60_000,
    );
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), "a".repeat(16));
    assert.equal(res.truncated, true);
    const bytes = await closed;
    assert.ok(bytes < 32 * 1024 * 1024, `${bytes} bytes written`);
  } finally {
    delete process.env["NODE_TLS_REJECT_UNAUTHORIZED"];
    transport.close();
    secure.close();
  }
});

it("opens a new connection after an answer that came before the body was all sent", async () => {
  // A server that answers as soon as it has the headers and reads no more:
  // the rest of the body cannot follow on that connection, nor may the
  // caller's body still be being sent once the answer is in.
  const sockets: Socket[] = [];
  const early = createServer((socket) => {
    sockets.push(socket);
    socket.on("error", () => {});
    socket.once("data", () => {
      socket.pause();
      socket.write(
        "HTTP/1.1 413 Payload Too Large\r\ncontent-length: 0\r\n\r\n",
      );
    });
  });
  await new Promise<void>((r) => early.listen(0, "127.0.0.1", r));
  const { port } = early.address() as { port: number };
  const client = new PlainHttpClient(new URL(`http://127.0.0.1:${port}/`), 16);
  try {
    const body = Buffer.alloc(64 * 1024 * 1024);
    const first = await client.send(
      { "content-length": body.length },
      body,
      5000,
    );
    assert.equal(first.status, 413);
    await client.send({ "content-length": 1 }, Buffer.from("x"), 5000);
    assert.equal(sockets.length, 2);
  } finally {
    client.close();
    for (const s of sockets) s.destroy();
    early.close();
  }
});
