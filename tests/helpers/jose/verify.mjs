// Checks JWT access tokens with panva's jose, as an independent resource server would
// (RFC 9068 §4): the issuer's JWKS over HTTP, `typ: at+jwt`, `iss`, `aud`, `exp`.
// Reads {"jwks_uri", "issuer", "audience", "tokens": {name: token}} on stdin and writes
// {name: "ok" | "<jose error code>"} on stdout.
import { createRemoteJWKSet, jwtVerify } from "jose";

let input = "";
for await (const chunk of process.stdin) input += chunk;
const { jwks_uri, issuer, audience, tokens } = JSON.parse(input);
const keys = createRemoteJWKSet(new URL(jwks_uri));
const out = {};
for (const [name, token] of Object.entries(tokens)) {
  try {
    await jwtVerify(token, keys, {
      issuer,
      audience,
      typ: "at+jwt",
      algorithms: ["EdDSA", "ES256"],
      requiredClaims: ["iss", "sub", "aud", "exp", "iat", "jti", "client_id"],
    });
    out[name] = "ok";
  } catch (error) {
    out[name] = error.code || String(error);
  }
}
process.stdout.write(JSON.stringify(out));
