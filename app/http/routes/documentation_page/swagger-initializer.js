// A file, not an inline script, so that the page's Content-Security-Policy allows only the service's own scripts.
window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    plugins: [SwaggerUIBundle.plugins.DownloadUrl],
    layout: "StandaloneLayout",
    // No online validator: its badge would send the document's URL to a third-party host on every visit.
    validatorUrl: null,
  });
};
