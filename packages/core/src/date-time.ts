// RFC 3339 date-times, the one time format whose reading is not a guess:
// a date, a time and its zone. Date.parse reads whatever it can: a British
// "06/12/2026, 12:33:50" as June 12, a time without its zone in the local
// time of the machine that reads it, `2026` as a year long past, and moves
// a February 30 on to March.

const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/**
 * The epoch milliseconds of `text` as an RFC 3339 date-time
 * (`2026-12-06T12:29:54.328Z`, `...+01:00`), the fraction's digits past
 * the milliseconds kept as a fraction of one, as near as a double holds
 * it; NaN for any other text. `secondsRequired` false also takes a time to
 * the minute (`2026-11-21T14:30+02:00`), as ISO 8601 does.
 */
export function parseDateTime(text: string, secondsRequired: boolean): number {
  const m = DATE_TIME.exec(text);
  if (m === null || (secondsRequired && m[6] === undefined)) return Number.NaN;
  const [y, mo, d, h, mi] = m.slice(1, 6).map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  const sec = Number(m[6] ?? 0);
  const oh = Number(m[9] ?? 0);
  const om = Number(m[10] ?? 0);
  // Second 60 is a leap second's; Date, like POSIX time, has none and
  // counts it as the next minute's first.
  if (h > 23 || mi > 59 || sec > 60 || oh > 23 || om > 59) return Number.NaN;
  // setUTCFullYear, as Date.UTC would take years 0-99 for 1900-1999.
  const day = new Date(0);
  day.setUTCFullYear(y, mo - 1, d);
  if (day.getUTCMonth() !== mo - 1 || day.getUTCDate() !== d) return Number.NaN; // a month or day the calendar does not have
  const fraction = m[7];
  const ms =
    fraction === undefined
      ? 0
      : fraction.length <= 3
        ? Number(fraction.padEnd(3, "0"))
        : Number(`${fraction.slice(0, 3)}.${fraction.slice(3)}`);
  const offset = (m[8] === "-" ? -1 : 1) * (oh * 60 + om);
  return day.getTime() + ((h * 60 + mi - offset) * 60 + sec) * 1000 + ms;
}
