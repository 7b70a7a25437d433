import { OciToolError } from '../util/errors.js';

/** Every media type ocitool knows. OCI image-spec 1.1, Docker distribution, schema 1. */
export const MediaType = {
  // OCI
  OciDescriptor: 'application/vnd.oci.descriptor.v1+json',
  OciLayoutHeader: 'application/vnd.oci.layout.header.v1+json',
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  // Docker schema 2
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  DockerPluginConfig: 'application/vnd.docker.plugin.v1+json',
  // Docker schema 1
  DockerSchema1: 'application/vnd.docker.distribution.manifest.v1+json',
  DockerSchema1Signed: 'application/vnd.docker.distribution.manifest.v1+prettyjws',
} as const;
export type KnownMediaType = (typeof MediaType)[keyof typeof MediaType];

const INDEX_TYPES = new Set<string>([MediaType.OciIndex, MediaType.DockerManifestList]);
const MANIFEST_TYPES = new Set<string>([MediaType.OciManifest, MediaType.DockerManifest]);
const SCHEMA1_TYPES = new Set<string>([MediaType.DockerSchema1, MediaType.DockerSchema1Signed]);
const CONFIG_TYPES = new Set<string>([MediaType.OciConfig, MediaType.DockerConfig]);

/** An image index or Docker manifest list. */
export const isIndexType = (mt: string): boolean => INDEX_TYPES.has(mt);
/** An OCI image manifest or Docker schema 2 manifest (not schema 1). */
export const isImageManifestType = (mt: string): boolean => MANIFEST_TYPES.has(mt);
export const isSchema1Type = (mt: string): boolean => SCHEMA1_TYPES.has(mt);
/** Anything a tag may point at: index, manifest, schema 1. */
export const isManifestType = (mt: string): boolean =>
  INDEX_TYPES.has(mt) || MANIFEST_TYPES.has(mt) || SCHEMA1_TYPES.has(mt);
/** An image config (OCI or Docker). Artifact configs of other types are opaque blobs. */
export const isImageConfigType = (mt: string): boolean => CONFIG_TYPES.has(mt);
const FOREIGN_TYPES = new Set<string>([
  MediaType.DockerForeignLayer,
  MediaType.DockerForeignLayerGzip,
  MediaType.OciLayerNondistributable,
  MediaType.OciLayerNondistributableGzip,
  MediaType.OciLayerNondistributableZstd,
]);
/** A Docker foreign or OCI non-distributable layer: fetched from its `urls`, never pushed. */
export const isForeignLayerType = (mt: string): boolean => FOREIGN_TYPES.has(mt);
/** A foreign layer that names where it lives: copies leave it there. */
export const livesElsewhere = (d: { mediaType: string; urls?: string[] }): boolean => isForeignLayerType(d.mediaType) && (d.urls?.length ?? 0) > 0;
/** A layer type whose content is a (possibly compressed) tar changeset. */
export const isLayerType = (mt: string): boolean =>
  mt.startsWith('application/vnd.oci.image.layer.') || mt.startsWith('application/vnd.docker.image.rootfs.');

/** The Accept header a client sends for manifests: every manifest type ocitool understands. */
export const MANIFEST_ACCEPT: readonly string[] = [
  MediaType.OciManifest,
  MediaType.DockerManifest,
  MediaType.DockerSchema1Signed,
  MediaType.DockerSchema1,
  MediaType.DockerManifestList,
  MediaType.OciIndex,
];

/** The digest and content of the OCI empty descriptor (`{}`). */
export const EMPTY_JSON_DIGEST = 'sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a';
/** DiffID of an empty layer: sha256 of 1024 NUL bytes (an empty tar). */
export const EMPTY_TAR_DIFFID = 'sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef';
/** Digest of docker's 32-byte gzipped empty tar used for throwaway schema 1 layers. */
export const EMPTY_GZIP_LAYER_DIGEST = 'sha256:a3ed95caeb02ffe68cdd9fd84406680ae93d633cb16422d00e8a7c22955b46d4';

const DOCKER_TO_OCI: Record<string, string> = {
  [MediaType.DockerLayerGzip]: MediaType.OciLayerGzip,
  [MediaType.DockerLayer]: MediaType.OciLayer,
  [MediaType.DockerForeignLayerGzip]: MediaType.OciLayerNondistributableGzip,
  [MediaType.DockerForeignLayer]: MediaType.OciLayerNondistributable,
  [MediaType.DockerConfig]: MediaType.OciConfig,
  [MediaType.DockerManifest]: MediaType.OciManifest,
  [MediaType.DockerManifestList]: MediaType.OciIndex,
};
const OCI_TO_DOCKER: Record<string, string> = Object.fromEntries(Object.entries(DOCKER_TO_OCI).map(([d, o]) => [o, d]));

/**
 * The same kind of content in the other format family (the bytes are identical; only the name
 * changes). Types with no counterpart (zstd layers in Docker) are an error; unknown types pass through.
 */
export function mediaTypeFor(mt: string, format: 'oci' | 'docker'): string {
  if (format === 'oci') return DOCKER_TO_OCI[mt] ?? mt;
  if (mt === MediaType.OciLayerZstd || mt === MediaType.OciLayerNondistributableZstd) {
    throw new OciToolError('UNSUPPORTED', `${mt} has no Docker equivalent (zstd is not supported for Docker images)`);
  }
  return OCI_TO_DOCKER[mt] ?? mt;
}
