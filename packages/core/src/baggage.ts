// W3C Baggage parsing and serialisation with the specification's limits.
// https://www.w3.org/TR/baggage/
//
// Reading is defensive: a header longer than MAX_HEADER_LENGTH is ignored
// whole, malformed list-members are skipped one by one (percent-encoded
// bytes that are not UTF-8 are no fault: they read as U+FFFD), and at most
// MAX_MEMBERS members / MAX_BYTES bytes are kept, dropping whole members
// (never part of one). Writing percent-encodes only what a value cannot
// carry as it is and applies the same limits, so what we send is always
// valid for the next hop, and a header read and written again keeps its form.

/** One baggage list-member. */
export interface BaggageMember {
  key: string;
  value: string;
  /** Raw `;`-separated properties, already validated, without the leading `;`. */
  metadata?: string;
}

/** Most list-members kept or sent. */
export const BAGGAGE_MAX_MEMBERS = 64;
/** Most bytes of list-members kept or sent. */
export const BAGGAGE_MAX_BYTES = 8192;
/** Headers longer than this are not parsed at all. */
export const BAGGAGE_MAX_HEADER_LENGTH = 16384;

// RFC 7230 tchar
function isTokenChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    c === 0x21 ||
    (c >= 0x23 && c <= 0x27) ||
    c === 0x2a ||
    c === 0x2b ||
    c === 0x2d ||
    c === 0x2e ||
    c === 0x5e ||
    c === 0x5f ||
    c === 0x60 ||
    c === 0x7c ||
    c === 0x7e
  );
}

/** Whether `key` is a valid baggage key (an RFC 7230 token). */
export function isValidBaggageKey(key: string): boolean {
  const n = key.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) if (!isTokenChar(key.charCodeAt(i))) return false;
  return true;
}

// baggage-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
function isBaggageOctet(c: number): boolean {
  return (
    c === 0x21 ||
    (c >= 0x23 && c <= 0x2b) ||
    (c >= 0x2d && c <= 0x3a) ||
    (c >= 0x3c && c <= 0x5b) ||
    (c >= 0x5d && c <= 0x7e)
  );
}

function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  const lower = c | 0x20;
  return lower >= 0x61 && lower <= 0x66 ? lower - 0x57 : -1;
}

/**
 * The value percent-decoded; undefined if it has a character outside
 * baggage-octet or a `%` not followed by two hex digits. Decoded bytes that
 * are not UTF-8 become U+FFFD, as W3C Baggage asks, rather than costing the
 * member.
 */
function decodeValue(raw: string): string | undefined {
  const n = raw.length;
  let hasPercent = false;
  for (let i = 0; i < n; i++) {
    const c = raw.charCodeAt(i);
    if (!isBaggageOctet(c)) return undefined;
    if (c === 0x25) hasPercent = true;
  }
  if (!hasPercent) return raw;
  // Every character is ASCII by now, so one byte each; Buffer's UTF-8
  // decoding replaces what is not UTF-8 and keeps a leading byte-order mark.
  const bytes = Buffer.allocUnsafe(n);
  let len = 0;
  for (let i = 0; i < n; i++) {
    const c = raw.charCodeAt(i);
    if (c !== 0x25) {
      bytes[len++] = c;
      continue;
    }
    const high = hexDigit(raw.charCodeAt(i + 1));
    const low = hexDigit(raw.charCodeAt(i + 2));
    if (high === -1 || low === -1) return undefined;
    bytes[len++] = (high << 4) | low;
    i += 2;
  }
  return bytes.toString("utf8", 0, len);
}

function isValidProperties(props: string): boolean {
  // property = key OWS [ "=" OWS value OWS ]: checked loosely but safely:
  // no control characters, no commas, each key a token.
  for (const p of props.split(";")) {
    const prop = p.trim();
    if (prop.length === 0) return false;
    const eq = prop.indexOf("=");
    const key = (eq === -1 ? prop : prop.slice(0, eq)).trim();
    if (!isValidBaggageKey(key)) return false;
    if (eq !== -1 && decodeValue(prop.slice(eq + 1).trim()) === undefined)
      return false;
  }
  return true;
}

/**
 * Parses a `baggage` header. Invalid members are skipped; a header over
 * {@link BAGGAGE_MAX_HEADER_LENGTH} yields no members. When a key repeats,
 * the last value wins.
 */
export function parseBaggage(header: string | undefined): BaggageMember[] {
  if (
    typeof header !== "string" ||
    header.length === 0 ||
    header.length > BAGGAGE_MAX_HEADER_LENGTH
  )
    return [];
  const out: BaggageMember[] = [];
  let bytes = 0;
  let start = 0;
  const n = header.length;
  while (start < n && out.length < BAGGAGE_MAX_MEMBERS) {
    let end = header.indexOf(",", start);
    if (end === -1) end = n;
    const raw = header.slice(start, end);
    start = end + 1;
    const semi = raw.indexOf(";");
    const kv = semi === -1 ? raw : raw.slice(0, semi);
    const eq = kv.indexOf("=");
    if (eq === -1) continue;
    const key = kv.slice(0, eq).trim();
    const value = decodeValue(kv.slice(eq + 1).trim());
    if (value === undefined || !isValidBaggageKey(key)) continue;
    let metadata: string | undefined;
    if (semi !== -1) {
      metadata = raw.slice(semi + 1).trim();
      if (!isValidProperties(metadata)) continue;
    }
    const size = raw.trim().length + (out.length > 0 ? 1 : 0);
    if (bytes + size > BAGGAGE_MAX_BYTES) break;
    bytes += size;
    const existing = out.findIndex((m) => m.key === key);
    if (existing !== -1) out.splice(existing, 1);
    out.push(
      metadata === undefined ? { key, value } : { key, value, metadata },
    );
  }
  return out;
}

// "%XX" for every byte value.
const PERCENT: string[] = Array.from(
  { length: 0x100 },
  (_, b) => "%" + b.toString(16).toUpperCase().padStart(2, "0"),
);

/**
 * The value with what baggage-octet does not allow, and `%`, percent-encoded
 * as UTF-8; everything else stays as it is, so a value read from a header
 * goes out in the form it came in (encoding `/`, `:`, `?` or `=` too would
 * grow a URL-like value at every hop). Undefined for one no encoding can
 * carry (a lone surrogate).
 */
function encodeValue(value: string): string | undefined {
  const n = value.length;
  let i = 0;
  while (i < n) {
    const c = value.charCodeAt(i);
    if (c === 0x25 || !isBaggageOctet(c)) break;
    i++;
  }
  // Most values (ids, names, tokens) need nothing.
  if (i === n) return value;
  // Runs of allowed characters are copied whole; the rest is written as its
  // UTF-8 bytes from the table.
  let out = value.slice(0, i);
  let kept = i;
  for (; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c !== 0x25 && isBaggageOctet(c)) continue;
    if (kept < i) out += value.slice(kept, i);
    if (c < 0x80) out += PERCENT[c]!;
    else if (c < 0x800)
      out += PERCENT[0xc0 | (c >> 6)]! + PERCENT[0x80 | (c & 0x3f)]!;
    else if (c < 0xd800 || c > 0xdfff)
      out +=
        PERCENT[0xe0 | (c >> 12)]! +
        PERCENT[0x80 | ((c >> 6) & 0x3f)]! +
        PERCENT[0x80 | (c & 0x3f)]!;
    else {
      const low = value.charCodeAt(i + 1);
      if (c > 0xdbff || !(low >= 0xdc00 && low <= 0xdfff)) return undefined;
      const cp = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
      out +=
        PERCENT[0xf0 | (cp >> 18)]! +
        PERCENT[0x80 | ((cp >> 12) & 0x3f)]! +
        PERCENT[0x80 | ((cp >> 6) & 0x3f)]! +
        PERCENT[0x80 | (cp & 0x3f)]!;
      i++;
    }
    kept = i + 1;
  }
  if (kept < n) out += value.slice(kept);
  return out;
}

/**
 * Serialises members into a `baggage` header value, percent-encoding what
 * values cannot carry as they are, skipping invalid keys and stopping before
 * the size limits would be passed. Returns an empty string when nothing can
 * be sent.
 */
export function serializeBaggage(members: Iterable<BaggageMember>): string {
  let out = "";
  let count = 0;
  for (const m of members) {
    if (count >= BAGGAGE_MAX_MEMBERS) break;
    if (!isValidBaggageKey(m.key) || typeof m.value !== "string") continue;
    // One entry that cannot be sent is left out; the others still go.
    const value = encodeValue(m.value);
    if (value === undefined) continue;
    let item = `${m.key}=${value}`;
    if (
      m.metadata !== undefined &&
      m.metadata.length > 0 &&
      isValidProperties(m.metadata)
    )
      item += `;${m.metadata}`;
    const next = count === 0 ? item : `${out},${item}`;
    // Everything above is ASCII (tokens, percent-encoding, validated octets),
    // so the string length is the byte length.
    if (next.length > BAGGAGE_MAX_BYTES) continue;
    out = next;
    count++;
  }
  return out;
}
