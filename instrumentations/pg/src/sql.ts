// SQL text as it may be recorded: literals replaced by `?`, comments by
// `/*?*/` or `--?`, plus a summary of what it does. One left-to-right scan
// that knows PostgreSQL's quoting (single quotes with '' escapes, E''
// strings with backslash escapes, dollar quoting, quoted identifiers,
// nested comments) replaces them, so a literal can never leak through a
// clever string or comment; a second reads the
// summary from that result, so it can hold no literal either. Results are
// cached per text: applications send the same few hundred statements all
// day. Only statements up to CACHED_SQL_LENGTH characters are: a longer one
// mostly carries its values inline (bulk inserts, pg-format), is seldom sent
// twice, and as a key would keep its whole text alive. So the cache holds
// at most 1000 statements of 4096 characters and their summaries, whatever
// the application sends; a longer statement is summarised each time, at the
// cost of two scans of the text it sends anyway.

const CACHE_LIMIT = 1000;

/** The longest statement whose summary is cached (and whose span shape pg keeps). */
export const CACHED_SQL_LENGTH = 4096;

export interface SqlSummary {
  /** The statement with every literal replaced by `?`. */
  text: string;
  /**
   * Its operations and their tables in the order it gives them, e.g.
   * `SELECT orders DELETE orders`, at most 255 characters (undefined if
   * it has no operation).
   */
  summary: string | undefined;
  /** Its operation, upper case, when it has only one: SELECT, CREATE TABLE, ... */
  operation: string | undefined;
  /** Its table, when it has only one operation and one table. */
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

/**
 * The index of the line end closing the `--` comment at `i`, or the text's
 * end. PostgreSQL ends one at a carriage return as at a line feed: what
 * follows a lone `\r` is SQL again, its literals included.
 */
function lineCommentEnd(sql: string, i: number): number {
  const n = sql.length;
  for (i += 2; i < n; i++) {
    const c = sql.charCodeAt(i);
    if (c === 0x0a || c === 0x0d) return i;
  }
  return n;
}

/**
 * Replaces literals (strings, numbers, dollar-quoted bodies) with `?`, and
 * each comment with an empty one: `/*?*\/`, `--?`.
 */
export function sanitizeSql(sql: string): string {
  return sanitize(sql, undefined);
}

/**
 * The literals sanitizeSql replaces, as PostgreSQL reads them: a string's
 * text without its quotes and escapes, a dollar-quoted body, a number as
 * written. Read again only for a statement that failed, whose error may
 * quote them.
 */
export function literalsOf(sql: string): string[] {
  const values: string[] = [];
  addLiterals(sql, values, summarizeSql(sql).operation === "DO");
  return values;
}

/**
 * Adds the values of the literals of `sql` to `values`, and, when `nested`,
 * of the literals written in each quoted one's text: a DO block's body is
 * one literal run as code, and the values written in it (`PERFORM
 * charge('4111...')`, doubled quotes and all) are the statement's too.
 * Each level reads a shorter text, so this ends.
 */
function addLiterals(sql: string, values: string[], nested: boolean): void {
  const found: string[] = [];
  sanitize(sql, found);
  for (const literal of found) {
    const value = literalValue(literal);
    // A quoted number, read again: its value is there already.
    if (value === sql) continue;
    values.push(value);
    // A number's value is its text: only a quoted one holds more.
    if (nested && value !== literal) addLiterals(value, values, true);
  }
}

/** sanitizeSql, noting each literal it replaces in `literals` if given. */
function sanitize(sql: string, literals: string[] | undefined): string {
  const n = sql.length;
  let out = "";
  let from = 0; // start of the not-yet-copied part
  let i = 0;
  const replace = (start: number, end: number, by = "?") => {
    if (literals !== undefined && by === "?")
      literals.push(sql.slice(start, end));
    out += sql.slice(from, start) + by;
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
    // A comment's body goes as a literal does: ORMs tag statements with
    // who asked and for what (sqlcommenter's customer='...'), developers
    // leave notes with addresses in them. Its mark stays, and so does the
    // line end closing a line comment.
    if (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) {
      const end = lineCommentEnd(sql, i);
      replace(i, end, "--?");
      i = end;
      continue;
    }
    if (c === 0x2f && sql.charCodeAt(i + 1) === 0x2a) {
      // nested as PostgreSQL nests them: the outermost one goes whole
      const end = blockCommentEnd(sql, i);
      replace(i, end, "/*?*/");
      i = end;
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

/** The backslash escapes of an E'' string that stand for another character. */
const ESCAPES: Record<string, string> = {
  b: "\b",
  f: "\f",
  n: "\n",
  r: "\r",
  t: "\t",
};

/** A literal's value, from its text as sanitize() found it (perhaps never closed). */
function literalValue(literal: string): string {
  const first = literal.charCodeAt(0);
  if (first === 0x24 /* $tag$ */) {
    const tag = literal.slice(0, literal.indexOf("$", 1) + 1);
    const closed = literal.length >= 2 * tag.length && literal.endsWith(tag);
    return literal.slice(tag.length, closed ? -tag.length : undefined);
  }
  const backslash = first !== 0x27;
  if (backslash && literal.charCodeAt(1) !== 0x27) return literal; // a number
  const body = literal.slice(backslash ? 2 : 1);
  const text = body.length > 0 && body.endsWith("'") ? body.slice(0, -1) : body;
  return backslash
    ? text.replace(/\\(.)|''/gsu, (pair, c?: string) =>
        c === undefined ? "'" : (ESCAPES[c] ?? c),
      )
    : text.replaceAll("''", "'");
}

// The summary (`db.query.summary`) is read from the sanitised text, where
// every literal is already `?`: it can hold only keywords and names. It is
// what the statement does, in the order it says it: each operation (SELECT,
// INSERT, UPDATE, DELETE, MERGE wherever they run, a subquery's or a CTE's
// included; any other statement's first word, with the kind of object for
// CREATE, ALTER and DROP) and the tables each one reads or writes, as
// `SELECT orders DELETE orders`. A function call's FROM (`EXTRACT(YEAR FROM
// d)`, `trim(both FROM s)`) opens no table, nor does a set-returning
// function (`FROM unnest($1)`), a CTE's name, or a name that only a
// statement like SAVEPOINT or LISTEN gives (often made per call).

const END = 0;
const WORD = 1;
const QUOTED = 2;
const OPEN = 3;
const CLOSE = 4;
const COMMA = 5;
const SEMI = 6;
const DOT = 7;
const OTHER = 8;

interface Token {
  kind: number;
  start: number;
  end: number;
}

/** The token kind of each ASCII character that is one by itself, else OTHER. */
const SINGLE = new Uint8Array(128).fill(OTHER);
SINGLE[0x28] = OPEN;
SINGLE[0x29] = CLOSE;
SINGLE[0x2c] = COMMA;
SINGLE[0x3b] = SEMI;
SINGLE[0x2e] = DOT;

/** Reads the token at or after `i` into `t`, past whitespace and comments. */
function readToken(sql: string, i: number, t: Token): void {
  const n = sql.length;
  for (;;) {
    let c = sql.charCodeAt(i);
    while (isSpace(c)) c = sql.charCodeAt(++i);
    if (i >= n) {
      t.kind = END;
      t.start = t.end = n;
      return;
    }
    t.start = i;
    if (c < 0x80 && !isIdentChar(c)) {
      if (c === 0x22) {
        i++;
        while (i < n) {
          if (sql.charCodeAt(i++) !== 0x22) continue;
          if (sql.charCodeAt(i) !== 0x22) break;
          i++;
        }
        t.kind = QUOTED;
        t.end = i;
        return;
      }
      if (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) {
        i = lineCommentEnd(sql, i);
        continue;
      }
      if (c === 0x2f && sql.charCodeAt(i + 1) === 0x2a) {
        i = blockCommentEnd(sql, i);
        continue;
      }
      t.kind = SINGLE[c]!;
      t.end = i + 1;
      return;
    }
    if (isDigit(c) || c === 0x24) {
      // a digit or `$` starts no name (`$1` is a placeholder)
      t.kind = OTHER;
      t.end = i + 1;
      return;
    }
    i++;
    while (i < n && isIdentChar(sql.charCodeAt(i))) i++;
    t.kind = WORD;
    t.end = i;
    return;
  }
}

/** Characters of a row of values once sanitised: `?`, `$1`, signs, commas. */
const VALUE_CHARS = new Uint8Array(128);
for (const c of " \t\n\r?$0123456789,+-.:") VALUE_CHARS[c.charCodeAt(0)] = 1;

/**
 * The index past the `)` closing a parenthesis that opened just before `i`
 * and holds only values (`(?, $2, -?)`, as a bulk insert has thousands of),
 * or -1: such a group says nothing of the statement, and is passed over
 * without a token for each value.
 */
function valuesEnd(sql: string, i: number): number {
  for (;;) {
    const c = sql.charCodeAt(i);
    if (c === 0x29) return i + 1;
    if (!(c < 0x80) || VALUE_CHARS[c] === 0) return -1;
    if (c === 0x2d && sql.charCodeAt(i + 1) === 0x2d) return -1;
    i++;
  }
}

/** A name as PostgreSQL reads it: a quoted one without its quotes. */
function nameOf(sql: string, t: Token): string {
  if (t.kind !== QUOTED) return sql.slice(t.start, t.end);
  const closed = t.end - t.start >= 2 && sql.charCodeAt(t.end - 1) === 0x22;
  return sql.slice(t.start + 1, closed ? t.end - 1 : t.end).replace(/""/g, '"');
}

/** The summary's longest length, as the conventions suggest. */
const SUMMARY_LENGTH = 255;

/** Operations that run inside another statement only where a statement may start. */
const NESTED_OPERATIONS = new Set(["INSERT", "UPDATE", "DELETE", "MERGE"]);
/** What an operation needs next to be one (`INSERT INTO`, not a column named insert). */
const OPERATION_NEXT: Record<string, string> = {
  INSERT: "INTO",
  DELETE: "FROM",
  MERGE: "INTO",
};
/** Words after CREATE, ALTER or DROP that say what kind of object. */
const OBJECT_KIND = new Set([
  "OR",
  "REPLACE",
  "TEMP",
  "TEMPORARY",
  "UNLOGGED",
  "GLOBAL",
  "LOCAL",
  "UNIQUE",
  "MATERIALIZED",
  "FOREIGN",
  "RECURSIVE",
  "DEFAULT",
  "PRIVILEGES",
  "TABLE",
  "INDEX",
  "VIEW",
  "SEQUENCE",
  "SCHEMA",
  "FUNCTION",
  "PROCEDURE",
  "TRIGGER",
  "TYPE",
  "EXTENSION",
  "DATABASE",
  "ROLE",
  "USER",
  "DOMAIN",
  "POLICY",
  "RULE",
  "AGGREGATE",
  "COLLATION",
  "PUBLICATION",
  "SUBSCRIPTION",
  "SERVER",
  "TABLESPACE",
  "OPERATOR",
  "STATISTICS",
  "EVENT",
]);
/** Statements that name privileges, SELECT among them, not operations. */
const PRIVILEGE_STATEMENTS = new Set([
  "GRANT",
  "REVOKE",
  "ALTER DEFAULT PRIVILEGES",
]);

/**
 * The words the summary looks for, each by its upper- and lower-case
 * spellings: any other word (most are names) is passed over without a copy.
 */
const KEYWORDS = new Map<string, string>();
for (const k of [
  ...NESTED_OPERATIONS,
  ...OBJECT_KIND,
  ..."AS ALTER ANALYZE CREATE DISTINCT DROP EXPLAIN FROM INTO JOIN LATERAL MATERIALIZED ONLY PREPARE RECURSIVE ROWS SELECT USING VERBOSE WITH".split(
    " ",
  ),
]) {
  KEYWORDS.set(k, k);
  KEYWORDS.set(k.toLowerCase(), k);
}
const LONGEST_KEYWORD = Math.max(...[...KEYWORDS.keys()].map((k) => k.length));

/** The word at `t` in upper case if the summary looks for it, else "". */
function keywordOf(sql: string, t: Token): string {
  if (t.kind !== WORD || t.end - t.start > LONGEST_KEYWORD) return "";
  const word = sql.slice(t.start, t.end);
  const known = KEYWORDS.get(word);
  if (known !== undefined) return known;
  // Mixed case (Select): seldom written, and worth a copy when it is.
  let cases = 0;
  for (let i = 0; i < word.length; i++) {
    const c = word.charCodeAt(i);
    cases |= c >= 0x61 && c <= 0x7a ? 1 : c >= 0x41 && c <= 0x5a ? 2 : 0;
  }
  return cases === 3 ? (KEYWORDS.get(word.toUpperCase()) ?? "") : "";
}

// What the next name is, if any.
const NO_TABLE = 0;
/** After FROM, USING or a comma between them: `name(` is a function. */
const TABLE_LIST = 1;
/** After JOIN: one table, `name(` a function. */
const JOINED = 2;
/** After INSERT or MERGE INTO, UPDATE, TABLE: one table, `name(` its columns. */
const TARGET = 3;

// What a parenthesis under way is, besides a group or a function's arguments.
/** A CTE's body: a comma or the main statement follows. */
const CTE_BODY = 1;
/** A statement follows its end (EXPLAIN's options). */
const THEN_STATEMENT = 2;

interface Shape {
  summary: string | undefined;
  operation: string | undefined;
  collection: string | undefined;
}

/**
 * The summary of a sanitised statement, with its operation and table when
 * it has only one of each (a statement with several has neither: the
 * summary says what it does).
 */
function shapeOfText(sql: string): Shape {
  const t: Token = { kind: END, start: 0, end: 0 };
  const ahead: Token = { kind: END, start: 0, end: 0 };
  const peek = (from: number): Token => {
    readToken(sql, from, ahead);
    return ahead;
  };
  const upper = (x: Token) => keywordOf(sql, x);

  let summary = "";
  let full = false;
  let operation: string | undefined;
  let operations = 0; // distinct ones, up to 2
  let collection: string | undefined;
  let collections = 0;
  const add = (part: string) => {
    if (full) return;
    const next = summary === "" ? part : `${summary} ${part}`;
    if (next.length > SUMMARY_LENGTH) full = true;
    else summary = next;
  };
  const addOperation = (op: string) => {
    add(op);
    if (operations === 0) {
      operation = op;
      operations = 1;
    } else if (op !== operation) operations = 2;
  };
  const addTable = (name: string) => {
    add(name);
    if (collections === 0) {
      collection = name;
      collections = 1;
    } else if (name !== collection) collections = 2;
  };

  // The parentheses under way, the statement itself at depth 0: what each
  // is, and the operation the text inside it runs, once one has started.
  // Arrays kept for the whole scan, as a bulk insert opens thousands.
  let depth = 0;
  const frameKind: number[] = [0];
  const frameOperation: Array<string | undefined> = [undefined];
  /** The next word is a statement's first, at the top. */
  let statementStart = true;
  /** The statement's operation as its first words give it (CREATE TABLE, ...). */
  let statement = "";
  /** A statement may start here: after `(`, a CTE, EXPLAIN or PREPARE ... AS. */
  let expectStatement = true;
  let expectTable = NO_TABLE;
  /** The depth of the FROM list under way, -1 if none. */
  let listDepth = -1;
  /** In that list: 0 just after an item, 1 after its alias, -1 awaiting one. */
  let listStage = -1;
  let ctes: Set<string> | undefined;
  /** WITH's next name is a CTE's. */
  let cteName = false;
  /** Between a CTE's name and its body, which is the `(` after AS. */
  let cteHeader = false;
  let previous = "";
  let afterOpen = false;

  let i = 0;
  for (;;) {
    readToken(sql, i, t);
    i = t.end;
    const kind = t.kind;
    // Nothing read after this changes the outcome: a summary that is full,
    // and two operations, which leave operation and table unset (a bulk
    // statement past the cut is not scanned to its end).
    if (kind === END || (full && operations === 2)) break;
    const word = upper(t);
    const last = previous;
    previous = word;
    const opened = afterOpen;
    afterOpen = kind === OPEN;

    if (kind === SEMI) {
      depth = 0;
      frameOperation[0] = undefined;
      statementStart = true;
      statement = "";
      expectStatement = true;
      expectTable = NO_TABLE;
      listDepth = -1;
      ctes = undefined;
      cteName = cteHeader = false;
      continue;
    }

    // A FROM list goes on at a comma after an item and its alias.
    if (listDepth === depth && expectTable === NO_TABLE) {
      if (kind === COMMA && listStage >= 0) {
        expectTable = TABLE_LIST;
        listStage = -1;
        continue;
      }
      if ((kind === WORD || kind === QUOTED) && word !== "AS" && listStage >= 0)
        listStage = listStage === 0 ? 1 : -2;
      else if (kind !== OPEN && word !== "AS") listStage = -2;
      if (listStage === -2) listDepth = -1;
    }

    if (kind === OPEN) {
      const cte = cteHeader && (last === "AS" || last === "MATERIALIZED");
      if (cte) cteHeader = false;
      const top = depth === 0;
      const then = top && statement === "EXPLAIN" && expectStatement;
      if (expectTable === TABLE_LIST) {
        listDepth = depth;
        listStage = 0;
      }
      expectTable = NO_TABLE;
      if (!cte && !then) {
        const end = valuesEnd(sql, i);
        if (end !== -1) {
          i = end;
          expectStatement = statementStart = false;
          continue;
        }
      }
      // INSERT, UPDATE, DELETE and MERGE run inside only a CTE or COPY
      // (...) TO, never in a subquery: elsewhere those words are names.
      expectStatement = cte || (top && statement === "COPY");
      statementStart = statementStart && top;
      depth++;
      frameKind[depth] = cte ? CTE_BODY : then ? THEN_STATEMENT : 0;
      frameOperation[depth] = undefined;
      continue;
    }
    if (kind === CLOSE) {
      expectTable = NO_TABLE;
      expectStatement = false;
      if (depth === 0) continue;
      const closed = frameKind[depth--];
      if (listDepth > depth) listDepth = -1;
      if (closed === THEN_STATEMENT) expectStatement = true;
      else if (closed === CTE_BODY) {
        if (peek(i).kind === COMMA) {
          i = ahead.end;
          cteName = true;
        } else expectStatement = true;
      }
      continue;
    }
    if (kind !== WORD && kind !== QUOTED) {
      expectTable = NO_TABLE;
      expectStatement = false;
      statementStart = false;
      continue;
    }

    if (cteName) {
      if (word === "RECURSIVE") continue;
      (ctes ??= new Set()).add(nameOf(sql, t));
      cteName = false;
      cteHeader = true;
      continue;
    }

    if (expectTable !== NO_TABLE) {
      if (word === "ONLY" || word === "LATERAL") continue;
      const mode = expectTable;
      expectTable = NO_TABLE;
      if (mode === TABLE_LIST) {
        listDepth = depth;
        listStage = 0;
      }
      if (word === "ROWS" && upper(peek(i)) === "FROM") {
        // ROWS FROM (f(), g()): functions
        i = ahead.end;
        continue;
      }
      let name = nameOf(sql, t);
      let qualified = false;
      for (;;) {
        if (peek(i).kind !== DOT) break;
        const dot = ahead.end;
        const part = peek(dot);
        if (part.kind !== WORD && part.kind !== QUOTED) break;
        name += `.${nameOf(sql, part)}`;
        qualified = true;
        i = part.end;
      }
      if (mode !== TARGET && peek(i).kind === OPEN) continue; // a function
      if (!qualified && ctes?.has(name)) continue;
      addTable(name);
      continue;
    }

    if (kind === QUOTED) {
      expectStatement = statementStart = false;
      continue;
    }

    if (statementStart) {
      statementStart = false;
      if (word === "WITH") {
        statement = word;
        cteName = true;
        expectStatement = false;
        continue;
      }
      let op = word || sql.slice(t.start, t.end).toUpperCase();
      if (word === "CREATE" || word === "ALTER" || word === "DROP") {
        while (OBJECT_KIND.has(upper(peek(i)))) {
          op += ` ${upper(ahead)}`;
          i = ahead.end;
        }
      }
      statement = op;
      expectStatement = word === "EXPLAIN";
      addOperation(op);
      frameOperation[depth] = op;
      // Statements that make, change, copy into, lock or empty a table
      // (CREATE, ALTER, DROP, COPY, LOCK, TRUNCATE) name none: they often
      // act on a temporary table named per call, a series of the duration
      // metric each. TABLE is a SELECT of a whole table.
      if (word === "UPDATE" || word === "TABLE") expectTable = TARGET;
      continue;
    }

    if (word === "SELECT") {
      if (!PRIVILEGE_STATEMENTS.has(statement)) {
        addOperation(word);
        frameOperation[depth] = word;
      }
      expectStatement = false;
      continue;
    }
    if (word === "WITH" && (expectStatement || opened)) {
      cteName = true;
      expectStatement = false;
      continue;
    }
    if (expectStatement) {
      if (NESTED_OPERATIONS.has(word)) {
        const next = peek(i);
        const needs = OPERATION_NEXT[word];
        if (
          needs === undefined
            ? next.kind === WORD || next.kind === QUOTED
            : upper(next) === needs
        ) {
          addOperation(word);
          frameOperation[depth] = word;
          expectStatement = false;
          if (word === "UPDATE") expectTable = TARGET;
          continue;
        }
      }
      // EXPLAIN ANALYZE VERBOSE DELETE ...
      if (
        statement === "EXPLAIN" &&
        depth === 0 &&
        (word === "ANALYZE" || word === "VERBOSE")
      )
        continue;
    }
    expectStatement = word === "AS" && statement === "PREPARE" && depth === 0;
    const op = frameOperation[depth];
    if (word === "FROM") {
      if (
        (op === "SELECT" || op === "DELETE" || op === "UPDATE") &&
        last !== "DISTINCT"
      )
        expectTable = TABLE_LIST;
    } else if (word === "JOIN") {
      if (
        op === "SELECT" ||
        op === "DELETE" ||
        op === "UPDATE" ||
        op === "MERGE"
      )
        expectTable = JOINED;
    } else if (word === "INTO") {
      // SELECT ... INTO makes a table, often a temporary one named per
      // call: like a CREATE TABLE's, its name stays out.
      if (op === "INSERT" || op === "MERGE") expectTable = TARGET;
    } else if (word === "USING") {
      if (op === "DELETE" || op === "MERGE") expectTable = TABLE_LIST;
    }
  }
  return {
    summary: summary === "" ? undefined : summary,
    operation: operations === 1 ? operation : undefined,
    collection: operations === 1 && collections === 1 ? collection : undefined,
  };
}

/** Sanitised text, summary, operation and table of a statement (cached up to CACHED_SQL_LENGTH). */
export function summarizeSql(sql: string): SqlSummary {
  const cached = sql.length <= CACHED_SQL_LENGTH;
  const hit = cached ? cache.get(sql) : undefined;
  if (hit !== undefined) return hit;
  const text = sanitizeSql(sql);
  const summary: SqlSummary = { text, ...shapeOfText(text) };
  if (!cached) return summary;
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(sql, summary);
  return summary;
}
