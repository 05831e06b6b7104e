// Swagger UI at /docs, started from a file so that the page runs no inline script.
// SwaggerUIBundle is the global of the bundle the page loads just before this module.
const container = document.getElementById("swagger-ui");

window.ui = SwaggerUIBundle({
  url: container.dataset.openapiUrl,
  dom_id: "#swagger-ui",
  layout: "BaseLayout",
  deepLinking: true,
  showExtensions: true,
  showCommonExtensions: true,
  validatorUrl: null, // the online validator would send the schema to another site
});
