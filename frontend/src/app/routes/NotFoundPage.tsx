import { Link } from "react-router";
import { usePageTitle } from "../../lib/usePageTitle";

export default function NotFoundPage() {
  usePageTitle("Page not found");
  return (
    <section>
      <h1>Page not found</h1>
      <p>
        <Link to="/">Back to the overview</Link>
      </p>
    </section>
  );
}
