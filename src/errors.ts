// The JSON error shape every route answers with: a stable machine `code` and a human `message`.

export function errorResponse(status: number, code: string, message: string, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ code, message }), {
    status,
    headers: { "content-type": "application/json; charset=utf-8", ...headers },
  });
}
