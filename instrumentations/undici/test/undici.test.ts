// The undici tests against undici 7, as an application installs it.
import * as undici from "undici";
import { undiciTests } from "./undici-suite.ts";

undiciTests(undici, 7);
