// Runs before ReDoc's bundle. ReDoc's footer always shows a logo from its CDN, which this
// page's policy refuses (nothing here comes from another origin). The image gets an empty
// source instead, however it is set: no request, no policy violation, and ReDoc's own error
// handler then removes the image.
{
  const CDN_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg";
  const local = (value) => (value === CDN_LOGO ? "" : value);
  const image = HTMLImageElement.prototype;
  const src = Object.getOwnPropertyDescriptor(image, "src");
  Object.defineProperty(image, "src", {
    ...src,
    set(value) {
      src.set.call(this, local(value));
    },
  });
  const setAttribute = Element.prototype.setAttribute;
  image.setAttribute = function (name, value) {
    return setAttribute.call(this, name, String(name).toLowerCase() === "src" ? local(value) : value);
  };
}
