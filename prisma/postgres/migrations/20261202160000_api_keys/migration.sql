-- CreateTable
CREATE TABLE "ApiKey" (
    "id" TEXT NOT NULL,
    "name" TEXT NOT NULL,
    "scopes" TEXT NOT NULL,
    "hash" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL,
    "revokedAt" TIMESTAMP(3),
    "lastUsedAt" TIMESTAMP(3),

    CONSTRAINT "ApiKey_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "ApiKey_hash_key" ON "ApiKey"("hash");

-- AlterTable
ALTER TABLE "Prediction" ADD COLUMN     "apiKeyId" TEXT;

-- AlterTable
ALTER TABLE "BatchJob" ADD COLUMN     "apiKeyId" TEXT;

-- CreateIndex
CREATE INDEX "Prediction_apiKeyId_id_idx" ON "Prediction"("apiKeyId", "id");

-- CreateIndex
CREATE INDEX "BatchJob_apiKeyId_id_idx" ON "BatchJob"("apiKeyId", "id");
