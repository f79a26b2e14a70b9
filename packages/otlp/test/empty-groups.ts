/**
 * An export request of `bytes` bytes that holds nothing: an empty
 * Resource<Signal> (field 1, length 0) repeated, then one Resource<Signal>
 * that holds only empty Scope<Signal>s (field 2, length 0), as a body of
 * a few kilobytes gzip-compressed inflates to.
 */
export function emptyGroups(bytes: number): Buffer {
  const pair = (tag: number) => Buffer.from([tag, 0x00]);
  const scopes = Buffer.alloc(bytes / 2, pair(0x12));
  const len: number[] = [];
  for (let n = scopes.length; ; n >>>= 7) {
    if (n < 0x80) {
      len.push(n);
      break;
    }
    len.push((n & 0x7f) | 0x80);
  }
  return Buffer.concat([
    Buffer.alloc(bytes / 2, pair(0x0a)),
    Buffer.from([0x0a, ...len]),
    scopes,
  ]);
}
