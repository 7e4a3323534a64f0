// GET /docs: Swagger UI (vendored, web/static/swagger-ui) on this server's
// /openapi.json. "Authorize" takes a bearer token for "Try it out"; it is
// kept in the page's memory only. No validator badge (it would call out).
"use strict";

window.addEventListener("DOMContentLoaded", () => {
  window.ui = window.SwaggerUIBundle({
    url: new URL("openapi.json", document.baseURI).href,
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    persistAuthorization: false,
    tryItOutEnabled: false,
  });
});
