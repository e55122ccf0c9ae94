"use strict";
// ReDoc for /redoc, from a file (the CSP allows no inline script).
Redoc.init("/openapi.json", {}, document.getElementById("redoc"));
