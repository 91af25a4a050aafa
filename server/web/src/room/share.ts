// The links a room is shared by: its page, and the roomscale:// link the
// native app registers for (app/src/link.rs reads it). Plain logic, tested
// in node.

/**
 * The roomscale:// link the native app opens: this page's host and room; on
 * plain http off loopback it says so (`insecure=1`), which the app requires
 * before it talks to a server unencrypted.
 */
export function appLink(page: {protocol: string; host: string; hostname: string; pathname: string}): string {
  // The hosts app/src/link.rs counts as loopback: localhost and its subdomains, 127.0.0.0/8, [::1].
  const host = page.hostname
  const loopback = host === "localhost" || host.endsWith(".localhost") || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)
  const insecure = page.protocol === "http:" && !loopback
  return `roomscale://${page.host}${page.pathname}${insecure ? "?insecure=1" : ""}`
}

