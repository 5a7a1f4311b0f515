import { DEFAULT_LOG_LEVEL, LOG_LEVELS } from './log-levels.js';

/** Its own module: bin.ts prints it without loading the command line parser's imports. */
export const USAGE = `usage: kindling-agent [serve|reindex|check-config] [options]
  serve          run the agent (the default)
  reindex        compare the index with what storage holds and report (never deletes storage)
  check-config   validate the config against this host (volume groups, shares, tools) without serving

options:
  -c, --config FILE     YAML or JSON config (/etc/kindling/agent.yaml under systemd); without it, the embedded
                        default: LevelDB under ./var/kindling and a local-folder share ./var/share
      --host H          listen address (overrides listen.host)
      --port N          listen port, 0 for any free one (overrides listen.port)
      --data-dir DIR    where the index lives (overrides dataDir)
      --token-file F    read the admin token from a file (or set KINDLING_TOKEN); --token T shows it in ps
      --log-level L     ${LOG_LEVELS.join(', ')} (default ${DEFAULT_LOG_LEVEL}); JSON lines on stderr,
                        coloured lines when stderr is a terminal
  -h, --help            this text
  -v, --version         the agent's version`;
