/** The formats of API.md's identifiers, used by the wire schemas and the domain alike. */
export const SLUG = /^[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])$/;
export const PRODUCT_KEY = /^[a-z][a-z0-9-]{1,39}$/;
export const ACTION = /^[a-z][a-z0-9_.:-]{0,127}$/;
