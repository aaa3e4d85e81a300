// Starts Swagger UI on this app's /openapi.json. A file, not an inline script, so the page's
// Content-Security-Policy can be `script-src 'self'`. Loaded with `defer` after
// swagger-ui-bundle.js: both run once the document is parsed, in that order.
"use strict";

(function () {
  // The key of the bearer scheme under components.securitySchemes in openapi.yaml.
  var BEARER = "bearer";

  var ui = window.SwaggerUIBundle({
    url: "/openapi.json", // same origin; the description's servers[0] is "/" too
    dom_id: "#swagger-ui",
    layout: "BaseLayout", // no top bar: no URL box, no badge from validator.swagger.io
    deepLinking: true, // #/tag/operationId links
    persistAuthorization: true, // the token survives reloads (localStorage of this origin)
    tryItOutEnabled: true, // request editors are open without clicking "Try it out"
    displayRequestDuration: true,
    filter: true,
    validatorUrl: null, // never contact validator.swagger.io
    queryConfigEnabled: false, // ignore ?url= and ?configUrl= in the address: this page shows our API only
    withCredentials: false, // bearer tokens only, no cookies
    responseInterceptor: authorizeOnLogin,
  });

  // A successful POST /auth/login made from this page authorizes the page with the token it
  // returned, so there is nothing to copy and paste; a successful POST /auth/logout forgets it.
  // "Authorize" still takes a pasted token. The *WithPersistOption/IfNeeded calls are the ones
  // that update localStorage: preauthorizeApiKey and logout alone leave it as it was.
  function authorizeOnLogin(response) {
    try {
      var url = new URL(response.url, window.location.href);
      if (response.ok && url.origin === window.location.origin) {
        var body = response.body;
        if (url.pathname === "/auth/login" && body && typeof body.access_token === "string") {
          ui.preauthorizeApiKey(BEARER, body.access_token);
          ui.authActions.persistAuthorizationIfNeeded();
        } else if (url.pathname === "/auth/logout") {
          ui.authActions.logoutWithPersistOption([BEARER]);
        }
      }
    } catch (error) {
      // Never let the convenience break the display of the response.
    }
    return response;
  }

  window.ui = ui; // for the browser's console
})();
