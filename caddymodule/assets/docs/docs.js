// scrapegate /docs: Swagger UI over the generated OpenAPI document, with a
// token field. The token stays in this tab's session storage and is sent
// with every "try it" call: a JWT as "Authorization: Bearer", anything else
// as "X-API-Key".
(function () {
  "use strict";
  var KEY = "scrapegate.token";
  var body = document.body;
  var input = document.getElementById("sg-token");
  var state = document.getElementById("sg-token-state");

  function load() { try { return sessionStorage.getItem(KEY) || ""; } catch (e) { return ""; } }
  function save(t) { try { if (t) { sessionStorage.setItem(KEY, t); } else { sessionStorage.removeItem(KEY); } } catch (e) { /* storage off */ } }
  function isJWT(t) { return /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/.test(t); }

  var token = load();
  var ui = null;

  function describe() {
    if (!token) {
      state.textContent = "No token: calls that need one answer 401.";
    } else {
      state.textContent = "Token set for this tab (" + (isJWT(token) ? "JWT, sent as Authorization: Bearer" : "API key, sent as X-API-Key") + ").";
    }
  }

  function authorize() {
    if (!ui) { return; }
    var current = ui.authSelectors.authorized();
    if (current && current.size) {
      ui.authActions.logout(["bearerAuth", "apiKeyAuth"]);
    }
    if (token) {
      ui.preauthorizeApiKey(isJWT(token) ? "bearerAuth" : "apiKeyAuth", token);
    }
  }

  document.getElementById("sg-token-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    token = input.value.trim();
    save(token);
    input.value = "";
    describe();
    authorize();
  });
  document.getElementById("sg-token-clear").addEventListener("click", function () {
    token = "";
    save("");
    input.value = "";
    describe();
    authorize();
  });
  describe();

  ui = SwaggerUIBundle({
    url: body.getAttribute("data-spec-url"),
    dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    deepLinking: true,
    docExpansion: "list",
    defaultModelsExpandDepth: 0,
    displayRequestDuration: true,
    filter: true,
    validatorUrl: null,
    persistAuthorization: false,
    tryItOutEnabled: false,
    requestInterceptor: function (req) {
      var h = req.headers || (req.headers = {});
      if (token && !h.Authorization && !h["X-API-Key"]) {
        if (isJWT(token)) { h.Authorization = "Bearer " + token; } else { h["X-API-Key"] = token; }
      }
      return req;
    },
    onComplete: authorize
  });
})();
