/** The formats of API.md's identifiers and times, used by the wire schemas and the domain alike. */
export const SLUG = /^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$/;
export const PRODUCT_KEY = /^[a-z][a-z0-9-]{1,39}$/;
export const ACTION = /^[a-z][a-z0-9_.:-]{0,127}$/;

/**
 * The instants the API can take and give back: UTC years 0001–9999. RFC 3339 has four-digit
 * years, and Postgres has no year 0 (nor a year 10000 written this way).
 */
export const EARLIEST_TIME_MS = Date.parse('0001-01-01T00:00:00.000Z');
export const LATEST_TIME_MS = Date.parse('9999-12-31T23:59:59.999Z');
export const isRepresentableTime = (ms: number): boolean => ms >= EARLIEST_TIME_MS && ms <= LATEST_TIME_MS;
