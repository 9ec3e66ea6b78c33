// Reads a JSON array of Kubernetes objects on stdin and validates each against the JSON schema of its
// apiVersion/kind (the schemas kubernetes-models generates from the Kubernetes OpenAPI spec).
// Prints one line per object; exits 1 when any object is invalid or of an unknown kind.
"use strict";
const fs = require("fs");

const objects = JSON.parse(fs.readFileSync(0, "utf8"));
let failures = 0;
for (const { source, object } of objects) {
  const [group, version] = object.apiVersion.includes("/") ? object.apiVersion.split("/") : ["", object.apiVersion];
  const modulePath = ["kubernetes-models", group, version, object.kind].filter(Boolean).join("/");
  const name = `${source}: ${object.kind} ${object.metadata && object.metadata.name}`;
  let Model;
  try {
    Model = require(modulePath)[object.kind];
  } catch (e) {
    console.log(`${name}: no schema for ${object.apiVersion} ${object.kind}`);
    failures++;
    continue;
  }
  try {
    new Model(object).validate();
    console.log(`${name}: valid`);
  } catch (e) {
    console.log(`${name}: INVALID: ${e.message}`);
    failures++;
  }
}
process.exit(failures === 0 ? 0 : 1);
