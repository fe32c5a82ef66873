/** JSON over the session the admin login opened; Django's CSRF cookie rides along on writes. */
export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
  ) {
    super(message);
  }
}

export async function getJson<T>(url: string, signal?: AbortSignal): Promise<T> {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" }, signal });
  if (!response.ok) {
    let detail = response.statusText;
    try {
      detail = ((await response.json()) as { detail?: string }).detail ?? detail;
    } catch {
      // a non-JSON error page: keep the status text
    }
    throw new ApiError(response.status, detail);
  }
  return (await response.json()) as T;
}
