/**
 * User and group names for unix socket ownership (`owner`, `group`), from /etc/passwd and
 * /etc/group: Node has no getpwnam(3). Numeric ids are taken as they are.
 */
import { readFileSync } from 'node:fs';
import { ContainerError } from '../shared/errors.ts';

export function resolveUser(user: string | number, listener: string): number {
  return resolveId(user, '/etc/passwd', 'user', listener);
}

export function resolveGroup(group: string | number, listener: string): number {
  return resolveId(group, '/etc/group', 'group', listener);
}

function resolveId(
  name: string | number,
  file: string,
  what: 'user' | 'group',
  listener: string,
): number {
  if (typeof name === 'number') return name;
  if (/^\d+$/.test(name)) return Number(name);
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    // No such database: every name is unknown.
  }
  for (const line of text.split('\n')) {
    // name:password:id:...
    const fields = line.split(':');
    if (fields[0] === name && fields[2] !== undefined && /^\d+$/.test(fields[2])) {
      return Number(fields[2]);
    }
  }
  throw new ContainerError(
    'UWSGI_ERR_LISTEN',
    `cannot listen on ${listener}: unknown ${what} "${name}" (not in ${file})`,
  );
}
