/** --help text, rendered from the table in options.ts. */
import { COMMANDS, COMMON_OPTIONS, type CommandSpec, type OptionSpec } from './options.ts';

const WIDTH = 80;

function wrap(text: string, indent: string): string {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line !== '' && indent.length + line.length + 1 + word.length > WIDTH) {
      lines.push(indent + line);
      line = word;
    } else {
      line = line === '' ? word : `${line} ${word}`;
    }
  }
  if (line !== '') lines.push(indent + line);
  return lines.join('\n');
}

/** Two aligned columns; long left cells push the text onto the next line. */
function table(rows: ReadonlyArray<readonly [string, string]>): string {
  // Size the column for the labels that fit in 30; a longer one gets a line of its own.
  const fitting = rows.map(([l]) => l.length).filter((n) => n <= 30);
  const left = (fitting.length > 0 ? Math.max(...fitting) : 30) + 2;
  return rows
    .map(([l, r]) => {
      const pad = ' '.repeat(2 + left);
      const text = wrap(r, pad).slice(pad.length);
      return l.length + 2 > left ? `  ${l}\n${pad}${text}` : `  ${l.padEnd(left)}${text}`;
    })
    .join('\n');
}

function optionLabel(option: OptionSpec): string {
  const flags =
    option.short === undefined ? `    --${option.name}` : `-${option.short}, --${option.name}`;
  return option.type === 'string' ? `${flags} ${option.value ?? 'VALUE'}` : flags;
}

function synopsis(command: CommandSpec): string {
  return command.synopsis === '' ? command.name : `${command.name} ${command.synopsis}`;
}

export function globalUsage(version: string): string {
  return `uwsgi-ts ${version}: the uwsgi protocol and an application container for Node.js

Usage: uwsgi-ts COMMAND [options]

Commands:
${table(
  COMMANDS.map((c) => [
    synopsis(c),
    c.aliases.length > 0 ? `${c.summary} (alias: ${c.aliases.join(', ')})` : c.summary,
  ]),
)}

Options:
${table(COMMON_OPTIONS.map((o) => [optionLabel(o), o.description]))}

Run 'uwsgi-ts COMMAND --help' for the options of a command.
`;
}

export function commandUsage(command: CommandSpec): string {
  const parts = [
    `Usage: uwsgi-ts ${synopsis(command)} [options]`,
    wrap(command.summary, ''),
    ...command.details.map((d) => wrap(d, '')),
    `Options:\n${table([...command.options, ...COMMON_OPTIONS].map((o) => [optionLabel(o), o.description]))}`,
  ];
  if (command.aliases.length > 0) parts.push(`Alias: ${command.aliases.join(', ')}`);
  return `${parts.join('\n\n')}\n`;
}
