/** Every time is kept at millisecond precision; Date already is, so "now" is simply now. */
export const now = (): Date => new Date();

export const addDays = (at: Date, days: number): Date => new Date(at.getTime() + days * 86_400_000);
