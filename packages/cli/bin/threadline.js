#!/usr/bin/env node
// The `threadline` command (the compiled program lives in ../dist).
import "../dist/cli.js";
