// A failed query's error message as it may be recorded when bound values
// are not. PostgreSQL writes values into its messages: the input a type
// refused (`invalid input syntax for type integer: "..."`), a value read as a
// name (`relation "..." does not exist` for `$1::regclass`), the token a
// syntax error stopped at, which may be a literal, and whatever a function
// raises (`RAISE EXCEPTION 'card % declined', card`). Which messages do is
// no list that could be kept: functions raise their own. So two rules hold
// for every message, whatever its SQLSTATE:
//
// - each text of the statement's values (bound, as pg sent them, and
//   literal, as PostgreSQL read them) is replaced by `?` wherever it
//   appears, raised unquoted by a function too;
// - in what the server sent, each quoted part (`"..."`, `'...'`) is replaced
//   by `"?"` (or `'?'`) unless it is a name the statement itself writes
//   and no value holds. That covers what the first rule cannot see: a part of a value
//   (nextval() cuts `seq_for_alice@example.com` at its dot: `schema
//   "seq_for_alice@example" does not exist`), a value PostgreSQL changed
//   as it read it (a name it folded to lower case), and values it read
//   itself, from a table or a function. The statement's names come from
//   its sanitised text, which holds no value.
//
// PostgreSQL quotes a value as it is, doubling none of its quotes: a value
// holding one shifts every quote after it, so that a part of it falls
// between two quoted parts and looks like message text. Masked quoted
// parts next to each other are therefore masked as one, with what lies
// between them (`"x "secret" y"` is one `"?"`); only a kept name divides
// them. A quote left open masks all after it. A masked part keeps the
// quote that opened it: `relation "?"`, `email '?' taken`.
//
// Two exceptions keep what is schema, never a value. In an integrity
// constraint violation (class 23), the quoted name right after the word
// `constraint` is the constraint's, from the catalog (`violates unique
// constraint "members_email_key"`): the values are in the error's detail,
// which is recorded nowhere. And a number bound or written as a value is
// not taken out of another number (`1000` for `100`) nor out of a built-in
// type's modifier, which PostgreSQL writes in its own messages (`value too
// long for type character varying(100)`).

/**
 * The shortest value text masked wherever it appears: a shorter one (`1`,
 * `t`, `ok`) would take digits and words of the message, and says little.
 * A shorter value in quotes goes by the second rule.
 */
const SHORTEST_MASKED = 3;

/**
 * The most characters masking a message may read, about: the number of
 * values times the message's length. Masking runs on the application's
 * thread, and a message can repeat thousands of values (an array bound
 * where one value was expected is written back whole). Past it, nothing of
 * the message is kept but PostgreSQL's code for it.
 */
const MAX_WORK = 1 << 19;

/**
 * `message` without the texts in `values` of SHORTEST_MASKED characters or
 * more, and, when `statement` (the statement's sanitised text) is given,
 * without the quoted parts that are no name of it (see above). The same
 * string when nothing was masked.
 */
export function maskedMessage(
  message: string,
  values: readonly string[],
  statement: string | undefined,
  /** The error's SQLSTATE, when PostgreSQL sent one. */
  code?: string,
): string {
  if (values.length * message.length > MAX_WORK)
    return code === undefined ? "?" : `SQLSTATE ${code}`;
  let masked = message;
  const found = values.filter(
    (v) => v.length >= SHORTEST_MASKED && message.includes(v),
  );
  // The longest first: a value that holds another goes whole.
  found.sort((a, b) => b.length - a.length);
  for (const v of found)
    masked = NUMBER.test(v)
      ? maskedNumber(masked, v)
      : masked.replaceAll(v, "?");
  return statement === undefined
    ? masked
    : maskQuoted(masked, values, statement, code?.startsWith("23") === true);
}

const NUMBER = /^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;

/**
 * The built-in types PostgreSQL writes with a modifier (format_type):
 * `character varying(100)`, `numeric(10,2)`, `timestamp(3) with time zone`.
 * Looked for in the few characters before a number only (TYPE_MODIFIER_WINDOW):
 * read up to the message's start for each, a message of many numbers took
 * seconds.
 */
const TYPE_MODIFIER_WINDOW = 64;
const TYPE_MODIFIER_BEFORE =
  /(?:^|[^\p{L}\p{N}_])(?:character varying|varchar|character|char|bpchar|numeric|decimal|bit varying|varbit|bit|timestamp|timestamptz|time|timetz|interval)\((?:\s*\d+\s*,)*\s*$/iu;
const TYPE_MODIFIER_AFTER = /^\s*(?:,\s*\d+\s*)*\)/;

/**
 * `message` with the number `v` masked wherever it appears, but as a part
 * of another number or in a type's modifier.
 */
function maskedNumber(message: string, v: string): string {
  const escaped = v.replace(/[.+]/g, "\\$&");
  const at = new RegExp(
    `(?<!\\p{N}|\\p{N}\\.)${escaped}(?!\\p{N}|\\.\\p{N})`,
    "gu",
  );
  return message.replace(at, (match: string, offset: number) => {
    // Cut short, the text is read after a letter: a type's name must
    // follow a character that is none, and the cut is not one.
    const from = Math.max(0, offset - TYPE_MODIFIER_WINDOW);
    const before = message.slice(from, offset);
    return TYPE_MODIFIER_BEFORE.test(from === 0 ? before : `x${before}`) &&
      TYPE_MODIFIER_AFTER.test(message.slice(offset + match.length))
      ? match
      : "?";
  });
}

/** The word `constraint` and a space, ending the text before a quote. */
const CONSTRAINT_BEFORE = /(?:^|[^\p{L}\p{N}_])constraint $/u;

function maskQuoted(
  message: string,
  values: readonly string[],
  statement: string,
  /** Whether the error is an integrity constraint violation. */
  violation: boolean,
): string {
  let names: Set<string> | undefined;
  let lowered: string[] | undefined;
  const kept = (part: string, quote: number): boolean => {
    if (part === "") return true;
    if (part.length >= SHORTEST_MASKED) {
      const lower = part.toLowerCase();
      lowered ??= values.map((v) => v.toLowerCase());
      if (lowered.some((v) => v.includes(lower))) return false;
    }
    // A constraint's name, unless a value is that name.
    if (
      violation &&
      CONSTRAINT_BEFORE.test(message.slice(Math.max(0, quote - 12), quote))
    )
      return !values.includes(part);
    // `syntax error at or near ","`: an operator or a bracket of the
    // statement's, no value.
    if (!/[\p{L}\p{N}\s]/u.test(part)) return statement.includes(part);
    names ??= namesOf(statement);
    const known = names;
    return part.split(".").every((name) => known.has(name));
  };
  let out = "";
  let copied = 0;
  // The masked parts under way, from the quote opening the first.
  let run = -1;
  let runEnd = 0;
  const flush = () => {
    const quote = message[run]!;
    out += `${message.slice(copied, run)}${quote}?${quote}`;
    copied = runEnd;
    run = -1;
  };
  const n = message.length;
  let i = 0;
  while (i < n) {
    const c = message.charCodeAt(i);
    if (c !== 0x22 && !(c === 0x27 && !isApostrophe(message, i))) {
      i++;
      continue;
    }
    const close = closingQuote(message, i + 1, c);
    const end = close === -1 ? n : close + 1;
    if (kept(message.slice(i + 1, close === -1 ? n : close), i)) {
      if (run !== -1) flush();
    } else {
      if (run === -1) run = i;
      runEnd = end;
    }
    i = end;
  }
  if (run !== -1) flush();
  return copied === 0 ? message : out + message.slice(copied);
}

/** The index of the quote closing one opened before `from`, or -1. */
function closingQuote(message: string, from: number, quote: number): number {
  for (let i = from; i < message.length; i++)
    if (
      message.charCodeAt(i) === quote &&
      !(quote === 0x27 && isApostrophe(message, i))
    )
      return i;
  return -1;
}

/** A `'` within a word (`customer's`, `O'Brien`), which quotes nothing. */
function isApostrophe(message: string, i: number): boolean {
  return isWordChar(message, i - 1) && isWordChar(message, i + 1);
}

function isWordChar(s: string, i: number): boolean {
  return i >= 0 && i < s.length && /[\p{L}\p{N}]/u.test(s[i]!);
}

/**
 * The names a sanitised statement writes, as written and as PostgreSQL
 * folds an unquoted one (to lower case); a quoted one as it reads it.
 */
function namesOf(statement: string): Set<string> {
  const names = new Set<string>();
  for (const m of statement.matchAll(
    /"((?:[^"]|"")*)"|[\p{L}_][\p{L}\p{N}_$]*/gu,
  )) {
    if (m[1] !== undefined) names.add(m[1].replaceAll('""', '"'));
    else {
      names.add(m[0]);
      names.add(m[0].toLowerCase());
    }
  }
  return names;
}
