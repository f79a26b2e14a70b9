// Certificates for tests that talk TLS on loopback: made by openssl,
// valid for a day, signed by themselves.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** PEM text of a key and its self-signed certificate. */
export interface SelfSigned {
  key: string;
  cert: string;
}

/**
 * A key and a certificate for `commonName`, with `subjectAltName` (e.g.
 * `IP:127.0.0.1`) when a client is to check the name it reached.
 */
export function selfSignedCertificate(
  commonName = "localhost",
  subjectAltName?: string,
): SelfSigned {
  const dir = mkdtempSync(join(tmpdir(), "threadline-tls-"));
  try {
    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        `/CN=${commonName}`,
        ...(subjectAltName === undefined
          ? []
          : ["-addext", `subjectAltName=${subjectAltName}`]),
        "-days",
        "1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    return {
      key: readFileSync(join(dir, "key.pem"), "utf8"),
      cert: readFileSync(join(dir, "cert.pem"), "utf8"),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
