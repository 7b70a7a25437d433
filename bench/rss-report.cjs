// Preloaded by the benchmark (node --require): reports the process's peak RSS as it exits.
'use strict';
process.on('exit', () => process.stderr.write(`MAXRSS ${process.resourceUsage().maxRSS}\n`));
