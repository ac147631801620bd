import { Command } from 'commander';
import { parseImageRef } from '../core/ref.js';
import type { ImageDestination, ImageSource, SourceOptions } from '../core/image.js';
import type { PlatformChoice } from '../core/platform.js';
import { transports } from '../../transports/index.js';

export interface GlobalOptions {
  debug?: boolean;
  overrideOs?: string;
  overrideArch?: string;
  overrideVariant?: string;
}

export function platformFrom(g: GlobalOptions): PlatformChoice {
  const p: PlatformChoice = {};
  if (g.overrideOs) p.os = g.overrideOs;
  if (g.overrideArch) p.architecture = g.overrideArch;
  if (g.overrideVariant) p.variant = g.overrideVariant;
  return p;
}

export async function openSource(input: string, opts: SourceOptions = {}): Promise<ImageSource> {
  const { transport, ref } = parseImageRef(input, transports);
  return transport.openSource(ref, opts);
}

export async function openDestination(input: string, opts: SourceOptions = {}): Promise<ImageDestination> {
  const { transport, ref } = parseImageRef(input, transports);
  return transport.openDestination(ref, opts);
}

export function parseIntOption(name: string) {
  return (v: string): number => {
    const n = Number(v);
    if (!/^[0-9]+$/.test(v) || !Number.isSafeInteger(n)) throw new Error(`${name}: not a whole number: ${v}`);
    return n;
  };
}

/** Write data (digests, JSON) to stdout and wait until it is flushed. */
export function writeOut(data: string | Buffer): Promise<void> {
  return new Promise((resolve, reject) => process.stdout.write(data, (e) => (e ? reject(e) : resolve())));
}

export type CommandFactory = (program: Command) => void;
