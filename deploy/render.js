'use strict';

// Pulls the per-queue resources into serverless.yml. They are rendered by the project's own Python
// (deploy/render.py, the same config loader the functions use), so queues.yml - or the file
// $SQS_LOOPS_CONFIG names - is the one source of truth and `serverless package` needs no pre-step.
// A config error fails the package step with the config's own message.

const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
let rendered;

function python() {
  if (process.env.SQS_LOOPS_PYTHON) return process.env.SQS_LOOPS_PYTHON;
  const venv = path.join(root, '.venv', 'bin', 'python');
  return fs.existsSync(venv) ? venv : 'python3';
}

module.exports = async ({ resolveVariable }) => {
  if (!rendered) {
    const prefix = `${await resolveVariable('self:service')}-${await resolveVariable('sls:stage')}`;
    // The deployment's region: a queue of another region is refused (docs/config.md).
    const region = await resolveVariable('self:provider.region');
    const args = ['-m', 'deploy.render', '--prefix', prefix, '--root', root, '--region', region];
    try {
      const out = execFileSync(python(), args, {
        cwd: root,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      rendered = JSON.parse(out);
    } catch (error) {
      const said = error.stderr ? String(error.stderr).trim() : '';
      throw new Error(said || `could not run ${python()} -m deploy.render: ${error.message}`);
    }
  }
  return rendered;
};

// The Python that runs the project's deploy code (deploy/artifact.js uses it too).
module.exports.python = python;
