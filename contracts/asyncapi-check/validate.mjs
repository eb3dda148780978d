// node validate.mjs FILE: exit 1 and print the diagnostics when the official parser finds an error.
import { readFile } from "node:fs/promises";
import { Parser, DiagnosticSeverity } from "@asyncapi/parser";

const text = await readFile(process.argv[2], "utf8");
const { document, diagnostics } = await new Parser().parse(text);
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
for (const d of errors) console.error(`${d.path.join("/")}: ${d.message}`);
if (!document || errors.length) process.exit(1);
console.log(`valid AsyncAPI ${document.version()}: ${document.channels().length} channel(s), ` +
  `${document.messages().length} message(s)`);
