/**
 * RFC 3339 timestamps on the wire: requests need an explicit offset (`Z`, `z` or ±hh:mm) and
 * are normalised to UTC, truncated to milliseconds; responses are `…sssZ`.
 */
import { isRepresentableTime } from '../domain/formats.js';

const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/;

const DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const isLeap = (y: number) => (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
const daysInMonth = (year: number, month: number) => (month === 2 && isLeap(year) ? 29 : DAYS[month - 1]!);

/** The instant a timestamp names, or null when it is not RFC 3339 with an offset. */
export function parseRfc3339(text: string): Date | null {
  const m = RFC3339.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [number, number, number, number, number, number];
  const millis = Number((m[7] ?? '.0').slice(1, 4).padEnd(3, '0'));
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offsetMinutes = 0;
  if (!m[8]) {
    const [oh, om] = [Number(m[10]), Number(m[11])];
    if (oh > 23 || om > 59) return null;
    offsetMinutes = (m[9] === '-' ? -1 : 1) * (oh * 60 + om);
  }
  const utc = new Date(Date.UTC(2000, month - 1, day, hour, minute, second, millis));
  utc.setUTCFullYear(year);
  const at = new Date(utc.getTime() - offsetMinutes * 60_000);
  // In UTC the year must be 0001–9999: 9999-12-31T23:00-02:00 is year 10000, which could be
  // stored but never written back as RFC 3339, and Postgres has no year 0000.
  return isRepresentableTime(at.getTime()) ? at : null;
}

export const formatTime = (at: Date): string => at.toISOString();
export const formatNullableTime = (at: Date | null): string | null => (at ? at.toISOString() : null);
