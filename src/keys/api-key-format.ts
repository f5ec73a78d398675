/**
 * The API key format of API.md: plaintext `bp_` + 22 base64url characters (16 random
 * bytes), a display/lookup prefix of `bp_` + the first 8 of them.
 */
import { randomBytes } from 'node:crypto';

const PLAINTEXT = /^bp_[A-Za-z0-9_-]{22}$/;
export const PREFIX_LENGTH = 'bp_'.length + 8;

export function generatePlaintext(): string {
  return `bp_${randomBytes(16).toString('base64url')}`;
}

export const isWellFormedKey = (candidate: string): boolean => PLAINTEXT.test(candidate);

export const prefixOf = (plaintext: string): string => plaintext.slice(0, PREFIX_LENGTH);
