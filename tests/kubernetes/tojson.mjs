// Prints the YAML documents of a file (kubectl kustomize output) as one JSON array, for the
// Python tests: node tojson.mjs FILE
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';

const docs = parseAllDocuments(readFileSync(process.argv[2], 'utf8'), { uniqueKeys: true });
const out = [];
for (const doc of docs) {
  if (doc.errors.length) {
    console.error(doc.errors.map((e) => e.message).join('\n'));
    process.exit(1);
  }
  const obj = doc.toJS();
  if (obj !== null && obj !== undefined) out.push(obj);
}
process.stdout.write(JSON.stringify(out));
