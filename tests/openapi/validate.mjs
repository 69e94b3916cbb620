// Validates an OpenAPI document against the OpenAPI 3.1 schema and resolves every $ref.
// Usage: node validate.mjs openapi.json
import SwaggerParser from "@apidevtools/swagger-parser";

const file = process.argv[2];
if (!file) {
  console.error("usage: node validate.mjs openapi.json");
  process.exit(2);
}
try {
  const api = await SwaggerParser.validate(file);
  const operations = Object.values(api.paths).reduce(
    (n, item) => n + ["get", "post", "put", "patch", "delete"].filter((m) => item[m]).length,
    0,
  );
  console.log(`${file}: valid OpenAPI ${api.openapi}, ${operations} operations`);
} catch (e) {
  console.error(`${file}: invalid: ${e.message}`);
  process.exit(1);
}
