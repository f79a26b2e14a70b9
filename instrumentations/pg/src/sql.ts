// SQL text as it may be recorded: literals replaced by `?`, plus the
// operation and main table read from it. One left-to-right scan that knows
// PostgreSQL's quoting (single quotes with '' escapes, E'' strings with
// backslash escapes, dollar quoting, quoted identifiers, nested comments), so a
// literal can never leak through a clever string. Results are cached per
// text: applications send the same few hundred statements all day. Only
// statements up to CACHED_SQL_LENGTH characters are: a longer one mostly
// carries its values inline (bulk inserts, pg-format), is seldom sent twice,
// and as a key would keep its whole text alive. So the cache holds at most
// 1000 statements of 4096 characters and their summaries, whatever the
// application sends; a longer statement is summarised each time, at the
// cost of a scan of the text it sends anyway.

const CACHE_LIMIT = 1000;

/** The longest statement whose summary is cached (and whose span shape pg keeps). */
export const CACHED_SQL_LENGTH = 4096;

export interface SqlSummary {
  /** The statement with every literal replaced by `?`. */
  text: string;
  /** First keyword, upper case: SELECT, INSERT, … (undefined if none). */
  operation: string | undefined;
  /** The main table, when it can be read cheaply. */
  collection: string | undefined;
}

const cache = new Map<string, SqlSummary>();

function isIdentChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x39) ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x61 && c <= 0x7a) ||
    c === 0x5f ||
    c === 0x24 ||
    c >= 0x80
  );
}
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
/** PostgreSQL's whitespace (scan.l `space`). */
function isSpace(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d);
}

/**
 * The index just past the block comment opening at `i`, or the text's end
 * if it never closes. PostgreSQL nests block comments, so one ends at the
 * `*\/` that closes its own `/*`, not at the first: text after an inner
 * comment's end is still comment, however much it looks like SQL.
 */
function blockCommentEnd(sql: string, i: number): number {
  const n = sql.length;
  let depth = 1;
  i += 2;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 0x2a && sql.charCodeAt(i + 1) === 0x2f) {
      i += 2;
      if (--depth === 0) return i;
    } else if (c === 0x2f && sql.charCodeAt(i + 1) === 0x2a) {
      i += 2;
      depth++;
    } else {
      i++;
    }
  }
  return n;
}

/** The index of a statement's first word, past whitespace and block comments. */
function statementStart(sql: string): number {
  const n = sql.length;
  let i = 0;
  for (;;) {
    while (i < n && isSpace(sql.charCodeAt(i))) i++;
    if (sql.charCodeAt(i) !== 0x2f || sql.charCodeAt(i + 1) !== 0x2a) return i;
    i = blockCommentEnd(sql, i);
  }
}

/** Replaces literals (strings, numbers, dollar-quoted bodies) with `?`. */
export function sanitizeSql(sql: string): string {
  const n = sql.length;
  let out = "";
  let from = 0; // start of the not-yet-copied part
  let i = 0;
  const replace = (start: number, end: number) => {
    out += sql.slice(from, start) + "?";
    from = end;
  };
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === 0x27 /* ' */) {
      // 'text' with '' escapes; E'..' / e'..' allow backslash escapes
      const start =
        i > 0 &&
        (sql.charCodeAt(i - 1) | 0x20) === 0x65 &&
        (i < 2 || !isIdentChar(sql.charCodeAt(i - 2)))
          ? i - 1
          : i;
      const backslash = start !== i;
      i++;
      while (i < n) {
        const d = sql.charCodeAt(i);
        if (backslash && d === 0x5c) {
          i += 2;
          continue;
        }
        if (d === 0x27) {
          if (sql.charCodeAt(i + 1) === 0x27) {
            i += 2;
            continue;
          }
          break;
        }
        i++;
      }
      i++;
      replace(start, Math.min(i, n));
      continue;
    }
    if (c === 0x22 /* " quoted identifier: keep */) {
      i++;
      while (
        i < n &&
        !(sql.charCodeAt(i) === 0x22 && sql.charCodeAt(i + 1) !== 0x22)
      )
        i += sql.charCodeAt(i) === 0x22 ? 2 : 1;
      i++;
      continue;
    }
    if (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) {
      // -- comment to end of line
      const end = sql.indexOf("\n", i);
      i = end === -1 ? n : end;
      continue;
    }
    if (c === 0x2f && sql.charCodeAt(i + 1) === 0x2a) {
      // /* comment */, nested as PostgreSQL nests them
      i = blockCommentEnd(sql, i);
      continue;
    }
    if (c === 0x24 /* $ */) {
      if (isDigit(sql.charCodeAt(i + 1))) {
        // $1 placeholder: keep
        i++;
        while (i < n && isDigit(sql.charCodeAt(i))) i++;
        continue;
      }
      // $tag$ ... $tag$ dollar quoting
      let j = i + 1;
      while (
        j < n &&
        isIdentChar(sql.charCodeAt(j)) &&
        sql.charCodeAt(j) !== 0x24
      )
        j++;
      if (
        j < n &&
        sql.charCodeAt(j) === 0x24 &&
        (i === 0 || !isIdentChar(sql.charCodeAt(i - 1)))
      ) {
        const tag = sql.slice(i, j + 1);
        const end = sql.indexOf(tag, j + 1);
        const stop = end === -1 ? n : end + tag.length;
        replace(i, stop);
        i = stop;
        continue;
      }
      i++;
      continue;
    }
    if (isDigit(c) || (c === 0x2e && isDigit(sql.charCodeAt(i + 1)))) {
      if (i > 0 && isIdentChar(sql.charCodeAt(i - 1))) {
        // part of an identifier like t1
        i++;
        continue;
      }
      const start = i;
      const radix = c === 0x30 ? sql.charCodeAt(i + 1) | 0x20 : 0;
      if (radix === 0x78 || radix === 0x6f || radix === 0x62) {
        i += 2; // 0x hex, 0o octal, 0b binary (PostgreSQL 16)
        while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
      } else {
        while (i < n) {
          const d = sql.charCodeAt(i);
          if (isDigit(d) || d === 0x2e || d === 0x5f) i++;
          else if (
            (d | 0x20) === 0x65 &&
            (isDigit(sql.charCodeAt(i + 1)) ||
              sql.charCodeAt(i + 1) === 0x2d ||
              sql.charCodeAt(i + 1) === 0x2b)
          )
            i += 2;
          else break;
        }
      }
      replace(start, i);
      continue;
    }
    if (isIdentChar(c)) {
      while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
      continue;
    }
    i++;
  }
  return from === 0 ? sql : out + sql.slice(from);
}

const TABLE_AFTER: Record<string, RegExp> = {
  SELECT: /\bfrom\s+((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)/i,
  DELETE: /\bfrom\s+(?:only\s+)?((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)/i,
  INSERT: /\binto\s+((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)/i,
  UPDATE:
    /^\s*update\s+(?:only\s+)?((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)/i,
  MERGE: /\binto\s+((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)/i,
};

const WORD = /[A-Za-z]+/y;

/** Sanitised text, operation and table of a statement (cached up to CACHED_SQL_LENGTH). */
export function summarizeSql(sql: string): SqlSummary {
  const cached = sql.length <= CACHED_SQL_LENGTH;
  const hit = cached ? cache.get(sql) : undefined;
  if (hit !== undefined) return hit;
  const text = sanitizeSql(sql);
  // Leading comments (sqlcommenter's, an application's tags) are skipped in
  // one pass that counts their nesting as PostgreSQL does, which no pattern
  // can, so any number of them before text that is no keyword costs one
  // read. The table is read after them: a comment's words are never taken
  // for the statement's.
  const start = statementStart(text);
  WORD.lastIndex = start;
  const operation = WORD.exec(text)?.[0].toUpperCase();
  let collection: string | undefined;
  const re = operation === undefined ? undefined : TABLE_AFTER[operation];
  if (re !== undefined) {
    const t = re.exec(start === 0 ? text : text.slice(start))?.[1];
    if (t !== undefined && !/^\(/.test(t)) collection = t.replace(/"/g, "");
  }
  const summary = { text, operation, collection };
  if (!cached) return summary;
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(sql, summary);
  return summary;
}
