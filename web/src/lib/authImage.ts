// An image the API serves only with the bearer token (a private video's thumbnail): an <img>
// cannot send the header, so it is fetched and shown from an object URL.
import { session } from './session';

/// The URL to put in `src`: `url` itself unless `needsAuth`, else an object URL the caller
/// revokes with `URL.revokeObjectURL`; null when the image could not be fetched.
export async function imageUrl(url: string, needsAuth: boolean): Promise<string | null> {
  if (!needsAuth || !session.token) return url;
  try {
    const res = await fetch(url, { headers: { Authorization: `Bearer ${session.token}` } });
    if (!res.ok) return null;
    return URL.createObjectURL(await res.blob());
  } catch {
    return null;
  }
}
