"use strict";
const root = document.getElementById("api");
function add(parent, tag, text) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  parent.appendChild(node);
  return node;
}
function schemaName(schema) {
  if (!schema) return "";
  if (schema.$ref) return schema.$ref.split("/").pop();
  return JSON.stringify(schema);
}
function render(doc) {
  root.textContent = "";
  add(root, "h1", doc.info.title + " " + doc.info.version);
  add(root, "p", doc.info.description || "");
  add(root, "h2", "Operations");
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const box = add(root, "section");
      const title = add(box, "h3");
      add(title, "span", method).className = "method";
      add(title, "code", path);
      add(box, "p", op.summary || "");
      if (op.description) add(box, "p", op.description);
      if (op.security) add(box, "p", "Security: " + JSON.stringify(op.security));
      if (op.parameters && op.parameters.length) {
        const table = add(box, "table");
        const head = add(table, "tr");
        const columns = ["parameter", "in", "required", "schema", "description"];
        for (const column of columns) add(head, "th", column);
        for (const p of op.parameters) {
          const row = add(table, "tr");
          for (const v of [p.name, p.in, p.required ? "yes" : "no", schemaName(p.schema),
                           p.description || ""]) add(row, "td", v);
        }
      }
      if (op.requestBody) {
        for (const [type, media] of Object.entries(op.requestBody.content)) {
          add(box, "h4", "Request body: " + type);
          add(box, "pre", JSON.stringify(media.schema, null, 2));
        }
      }
      const list = add(box, "ul");
      for (const [status, response] of Object.entries(op.responses)) {
        const line = add(list, "li");
        add(line, "strong", status + " ");
        add(line, "span", response.description);
        for (const [type, media] of Object.entries(response.content || {})) {
          const refs = media["x-events"] ? Object.values(media["x-events"]) : [];
          const shown = refs.length ? refs.map((r) => r.split("/").pop()).join(", ")
                                    : schemaName(media.schema);
          add(line, "div", type + ": " + shown);
        }
      }
    }
  }
  add(root, "h2", "Schemas");
  for (const [name, schema] of Object.entries(doc.components.schemas)) {
    const box = add(root, "section");
    box.id = "schema-" + name;
    add(box, "h3", name);
    add(box, "pre", JSON.stringify(schema, null, 2));
  }
}
fetch("openapi.json")
  .then((response) => response.json())
  .then(render)
  .catch((error) => { root.textContent = "Could not load openapi.json: " + error; });
