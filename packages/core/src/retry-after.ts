// Retry-After (RFC 9110 §10.2.3), as seconds or an HTTP date. A module of
// its own, importing nothing, so the export worker can take it without the
// rest of core.

/**
 * Whether an answer says the request failed in a way a client tries again
 * after: too many requests, or a server error.
 */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/**
 * How long a `Retry-After` value asks to wait, in ms; undefined when it is
 * neither form. A date already past asks for no wait (0), as "0" does. Only
 * RFC 9110's forms are read: whole seconds (digits alone) or an HTTP date
 * (IMF-fixdate, or the obsolete RFC 850 and asctime forms). Number() and
 * Date.parse() read far more ("-5" as a date in 2001, "1.5e3" and "0x10" as
 * seconds, "" as 0), each a "retry now" or a wait the server did not ask for.
 */
export function retryAfterMs(value: string | undefined): number | undefined {
  // Whitespace around a field value is not part of it (RFC 9110 section 5.5).
  const text = value?.replace(/^[ \t]+|[ \t]+$/g, "");
  if (text === undefined) return undefined;
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = httpDate(text);
  return at === undefined ? undefined : Math.max(0, at - Date.now());
}

const DAY = "(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)";
const LONG_DAY = "(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)";
const MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(" ");
const MONTH = `(?<month>${MONTHS.join("|")})`;
const TIME = "(?<hour>\\d{2}):(?<minute>\\d{2}):(?<second>\\d{2})";
const HTTP_DATES = [
  // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
  `^${DAY}, (?<day>\\d{2}) ${MONTH} (?<year>\\d{4}) ${TIME} GMT$`,
  // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
  `^${LONG_DAY}, (?<day>\\d{2})-${MONTH}-(?<yy>\\d{2}) ${TIME} GMT$`,
  // asctime, in GMT though it says no zone: Sun Nov  6 08:49:37 1994
  `^${DAY} ${MONTH} (?<day>[ \\d]\\d) ${TIME} (?<year>\\d{4})$`,
].map((form) => new RegExp(form));

/** An HTTP date (RFC 9110 section 5.6.7) in ms since the epoch. */
function httpDate(text: string): number | undefined {
  const date = HTTP_DATES.map((form) => form.exec(text)).find(Boolean)?.groups;
  if (date === undefined) return undefined;
  let year = Number(date.year);
  if (date.yy !== undefined) {
    // A two-digit year more than 50 years ahead is the latest past year
    // ending in those digits.
    const now = new Date().getUTCFullYear();
    year = now - (now % 100) + Number(date.yy);
    if (year > now + 50) year -= 100;
  }
  const month = MONTHS.indexOf(date.month!);
  const day = Number(date.day);
  const hour = Number(date.hour);
  const minute = Number(date.minute);
  const second = Number(date.second);
  // 60 is a leap second.
  if (hour > 23 || minute > 59 || second > 60) return undefined;
  // Date.UTC carries a 31 Feb into March: no such date was sent.
  const midnight = new Date(Date.UTC(year, month, day));
  if (midnight.getUTCMonth() !== month || midnight.getUTCDate() !== day)
    return undefined;
  return midnight.getTime() + ((hour * 60 + minute) * 60 + second) * 1000;
}
