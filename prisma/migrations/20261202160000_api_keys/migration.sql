-- CreateTable
CREATE TABLE "ApiKey" (
    "id" TEXT NOT NULL PRIMARY KEY,
    "name" TEXT NOT NULL,
    "scopes" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" DATETIME NOT NULL,
    "revokedAt" DATETIME,
    "lastUsedAt" DATETIME
);

-- CreateIndex
CREATE UNIQUE INDEX "ApiKey_hash_key" ON "ApiKey"("hash");

-- AlterTable
ALTER TABLE "Prediction" ADD COLUMN "apiKeyId" TEXT;

-- AlterTable
ALTER TABLE "BatchJob" ADD COLUMN "apiKeyId" TEXT;

-- CreateIndex
CREATE INDEX "Prediction_apiKeyId_id_idx" ON "Prediction"("apiKeyId", "id");

-- CreateIndex
CREATE INDEX "BatchJob_apiKeyId_id_idx" ON "BatchJob"("apiKeyId", "id");
