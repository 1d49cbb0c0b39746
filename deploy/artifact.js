'use strict';

// A local plugin (serverless.yml lists it after serverless-python-requirements, so its hook runs after the
// requirements are in the zip): completes the deployment package with bytecode compiled for the functions'
// runtime and the config's JSON form, through the project's own Python (deploy/artifact.py).

const { execFileSync } = require('child_process');
const path = require('path');
const { python } = require('./render.js');

const root = path.resolve(__dirname, '..');

class SqsLoopsArtifact {
  constructor(serverless, options) {
    this.serverless = serverless;
    this.options = options || {};
    this.hooks = {
      'after:package:createDeploymentArtifacts': () => this.complete(),
      'after:deploy:function:packageFunction': () => this.complete(),
    };
  }

  complete() {
    const service = this.serverless.service;
    // `deploy function -f NAME` packages that function alone, into its own artifact.
    const fn = this.options.function ? service.getFunction(this.options.function) : null;
    const artifact = (fn && fn.package && fn.package.artifact) || (service.package && service.package.artifact);
    if (!artifact) return;
    const args = [
      '-m', 'deploy.artifact', path.resolve(root, artifact),
      '--config', service.custom.rendered.config_path,
      '--runtime', service.provider.runtime,
      '--root', root,
    ];
    try {
      const out = execFileSync(python(), args, { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      for (const line of out.trim().split('\n')) if (line) this.serverless.cli.log(line);
    } catch (error) {
      const said = error.stderr ? String(error.stderr).trim() : '';
      throw new Error(said || `could not run ${python()} -m deploy.artifact: ${error.message}`);
    }
  }
}

module.exports = SqsLoopsArtifact;
