// Swagger UI on /openapi.json, everything from this server: no validator badge (it would load an image from
// swagger.io), "Try it out" ready for a pasted token (Authorize).
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  displayOperationId: true,
  defaultModelsExpandDepth: 0,
  persistAuthorization: false,
  tryItOutEnabled: false,
});
